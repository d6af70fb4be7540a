"""The classical baseline: hashed word / character n-gram TF-IDF → logistic regression → (binary) boosted
trees over that logit and the keyword-stuffing features, with calibrated probabilities, evidence-naming
reasons and skops persistence.

One concept per module, imports pointing down the list:

- :mod:`~hf_spamguard.baseline.lexicon`: the brand lexicon, stop / style / category words and the
  keyword-block markers (plain data);
- :mod:`~hf_spamguard.baseline.hashing`: token and n-gram hashes, set membership, the chunk's tokens;
- :mod:`~hf_spamguard.baseline.stuffing`: the keyword-stuffing features, vectorised;
- :mod:`~hf_spamguard.baseline.featurizer`: the hashed TF-IDF featuriser (:class:`Featurizer`);
- :mod:`~hf_spamguard.baseline.explain`: reasons naming the evidence (:func:`reason_for`);
- :mod:`~hf_spamguard.baseline.persistence`: the folder on disk and the trusted-types check;
- :mod:`~hf_spamguard.baseline.stage2`: the second stage's trees as arrays, calibration, its grid;
- :mod:`~hf_spamguard.baseline.model`: :class:`BaselineClassifier` (fit, scores, verdicts, save/load);
- :mod:`~hf_spamguard.baseline.train`: :func:`train_baseline`, what ``spamguard baseline train`` runs.

Importing the package loads NumPy only: pyarrow, scikit-learn, SciPy and skops are imported by the
functions that need them, so the CLI starts fast.
"""

from __future__ import annotations

from hf_spamguard.baseline.explain import describe_evidence, reason_for
from hf_spamguard.baseline.featurizer import DENSE_FEATURES, Featurizer, FeaturizerConfig, featurize_chunk
from hf_spamguard.baseline.lexicon import BRAND_BIGRAMS, BRANDS
from hf_spamguard.baseline.model import FORMAT_VERSION, BaselineClassifier, BaselineTrainingArguments
from hf_spamguard.baseline.persistence import (
    MODEL_TYPE,
    TRUSTED_TYPES,
    UntrustedModelError,
    is_baseline_folder,
    skops_types,
)
from hf_spamguard.baseline.stage2 import DEFAULT_TREE_GRID, TreeConfig, tree_grid
from hf_spamguard.baseline.stuffing import STUFFING_FEATURES
from hf_spamguard.baseline.train import train_baseline

__all__ = [
    "BRANDS",
    "BRAND_BIGRAMS",
    "BaselineClassifier",
    "BaselineTrainingArguments",
    "DEFAULT_TREE_GRID",
    "DENSE_FEATURES",
    "FORMAT_VERSION",
    "Featurizer",
    "FeaturizerConfig",
    "MODEL_TYPE",
    "STUFFING_FEATURES",
    "TRUSTED_TYPES",
    "TreeConfig",
    "UntrustedModelError",
    "describe_evidence",
    "featurize_chunk",
    "is_baseline_folder",
    "reason_for",
    "skops_types",
    "train_baseline",
    "tree_grid",
]
