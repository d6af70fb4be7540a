"""The classical baseline: hashed word / character n-gram TF-IDF + keyword-stuffing features → logistic
regression, with calibrated probabilities, evidence-naming reasons and skops persistence.

One concept per module, imports pointing down the list:

- :mod:`~hf_spamguard.baseline.lexicon`: the brand lexicon and keyword-block markers (plain data);
- :mod:`~hf_spamguard.baseline.featurizer`: the vectorised hashing featuriser (:class:`Featurizer`);
- :mod:`~hf_spamguard.baseline.explain`: reasons naming the evidence (:func:`reason_for`);
- :mod:`~hf_spamguard.baseline.persistence`: the folder on disk and the trusted-types check;
- :mod:`~hf_spamguard.baseline.model`: :class:`BaselineClassifier` (fit, scores, verdicts, save/load);
- :mod:`~hf_spamguard.baseline.train`: :func:`train_baseline`, what ``spamguard baseline train`` runs.

Importing the package loads NumPy only: pyarrow, scikit-learn, SciPy and skops are imported by the
functions that need them, so the CLI starts fast.
"""

from __future__ import annotations

from hf_spamguard.baseline.explain import describe_evidence, reason_for
from hf_spamguard.baseline.featurizer import DENSE_FEATURES, Featurizer, FeaturizerConfig, featurize_chunk
from hf_spamguard.baseline.lexicon import BRAND_BIGRAMS, BRANDS
from hf_spamguard.baseline.model import BaselineClassifier, BaselineTrainingArguments
from hf_spamguard.baseline.persistence import (
    MODEL_TYPE,
    TRUSTED_TYPES,
    UntrustedModelError,
    is_baseline_folder,
    skops_types,
)
from hf_spamguard.baseline.train import train_baseline

__all__ = [
    "BRANDS",
    "BRAND_BIGRAMS",
    "BaselineClassifier",
    "BaselineTrainingArguments",
    "DENSE_FEATURES",
    "Featurizer",
    "FeaturizerConfig",
    "MODEL_TYPE",
    "TRUSTED_TYPES",
    "UntrustedModelError",
    "describe_evidence",
    "featurize_chunk",
    "is_baseline_folder",
    "reason_for",
    "skops_types",
    "train_baseline",
]
