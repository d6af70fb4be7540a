"""Reference models the benchmarks compare hf-spamguard against (not part of the package).

Benchmarks run as scripts (``python benchmarks/<name>.py``), so this folder is on ``sys.path`` and they
import it as ``from references import ...``. Every builder returns an unfitted scikit-learn estimator
whose ``predict_proba(texts)[:, 1]`` is the spam probability.
"""

from __future__ import annotations

from typing import Any


def seed_reference_pipeline() -> Any:
    """The seed notebook's model, for comparisons: word TF-IDF (10k features, English stop words) + LR."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(max_features=10000, stop_words="english"), LogisticRegression(max_iter=1000)
    )


def char_wb_reference() -> Any:
    """The issue's character reference: ``char_wb`` 2-5-gram TF-IDF (sublinear tf, min_df 2) + LR C=4."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
        LogisticRegression(C=4, max_iter=5000),
    )


def _word_char_union() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    return make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 6), sublinear_tf=True, min_df=2),
    )


def word_char_reference() -> Any:
    """Word 1-2-gram and ``char_wb`` 1-6-gram TF-IDF stacked side by side (each L2-normalised) + LR C=4."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(_word_char_union(), LogisticRegression(C=4, max_iter=5000))


def word_char_svm_reference() -> Any:
    """The same features + a linear SVM (C=0.1), Platt-calibrated by 3-fold cross-validation."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    return make_pipeline(_word_char_union(), CalibratedClassifierCV(LinearSVC(C=0.1), method="sigmoid", cv=3))


class StuffingBoosting:
    """A gradient-boosted model over hf-spamguard's stuffing features alone (no n-grams), so the table
    shows what the layout features give without the text's words."""

    def fit(self, texts: list[str], y: Any) -> StuffingBoosting:
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.model = HistGradientBoostingClassifier(
            learning_rate=0.05, max_leaf_nodes=7, max_iter=100, min_samples_leaf=20, random_state=0
        ).fit(self._features(texts), y)
        return self

    @staticmethod
    def _features(texts: list[str]) -> Any:
        from hf_spamguard.baseline import FeaturizerConfig, featurize_chunk

        return featurize_chunk(texts, FeaturizerConfig(bigram_bits=0)).dense

    def predict_proba(self, texts: list[str]) -> Any:
        return self.model.predict_proba(self._features(texts))


__all__ = [
    "StuffingBoosting",
    "char_wb_reference",
    "seed_reference_pipeline",
    "word_char_reference",
    "word_char_svm_reference",
]
