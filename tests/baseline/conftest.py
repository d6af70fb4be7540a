"""Fixtures of the baseline tests: demo listings and one small fitted binary model, built once."""

from __future__ import annotations

import numpy as np
import pytest

from hf_spamguard.baseline import BaselineClassifier, BaselineTrainingArguments, tree_grid

#: Training settings that keep the tests fast (one C, three folds, two small stage-2 configurations).
FAST = BaselineTrainingArguments(
    Cs=(4.0,),
    cv=3,
    stage2_required=True,  # the demo rows are easy: the linear stage alone would win out-of-fold
    stage2_grid=tree_grid(
        leaves=(7,), iterations=(40,), min_samples_leaf=(10,), calibrations=("none", "platt")
    ),
)


@pytest.fixture
def fast_args() -> BaselineTrainingArguments:
    """:data:`FAST`, for tests that fit their own model."""
    return FAST


@pytest.fixture(scope="package")
def demo_rows():
    """300 synthetic listings: (texts, 0/1 labels); the first 200 train the ``model`` fixture."""
    from hf_spamguard.data.synthetic import generate_demo_listings

    rows = generate_demo_listings(n=300, seed=1)
    return [r["description"] for r in rows], np.array([int(r["label"]) for r in rows])


@pytest.fixture(scope="package")
def model(demo_rows):
    """A binary baseline fitted on the first 200 demo rows (tests that change it restore it)."""
    texts, y = demo_rows
    return BaselineClassifier().fit(texts[:200], y[:200], FAST)
