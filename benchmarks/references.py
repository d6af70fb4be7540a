"""Reference models the benchmarks compare hf-spamguard against (not part of the package).

Benchmarks run as scripts (``python benchmarks/<name>.py``), so this folder is on ``sys.path`` and they
import it as ``from references import ...``.
"""

from __future__ import annotations

from typing import Any


def seed_reference_pipeline() -> Any:
    """The seed notebook's model, for comparisons: word TF-IDF (10k features, English stop words) + LR.

    An unfitted scikit-learn ``Pipeline``; ``predict_proba(texts)[:, 1]`` is its spam probability.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(max_features=10000, stop_words="english"), LogisticRegression(max_iter=1000)
    )


__all__ = ["seed_reference_pipeline"]
