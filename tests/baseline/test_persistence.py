"""Baseline folders: identical round trip, atomic writes, untrusted skops types refused, other folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_spamguard.baseline import BaselineClassifier, UntrustedModelError, is_baseline_folder
from hf_spamguard.policy import Thresholds


class NotAllowed:  # an arbitrary object smuggled into a model file
    def __init__(self) -> None:
        self.payload = "rm -rf /"


def test_save_load_roundtrip_identical(model, demo_rows, tmp_path):
    texts, _ = demo_rows
    model.policy = Thresholds(review=0.4, demote=0.8)
    try:
        model.save_pretrained(tmp_path)
    finally:
        model.policy = None
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "spamguard-baseline" and config["labels"] == ["spam"]
    assert is_baseline_folder(tmp_path)
    loaded = BaselineClassifier.from_pretrained(tmp_path)
    assert loaded.policy == Thresholds(review=0.4, demote=0.8)
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files


def test_untrusted_types_are_refused(model, tmp_path):
    import skops.io as sio

    model.save_pretrained(tmp_path)
    state = sio.load(tmp_path / "model.skops", trusted=None)
    state["extra"] = NotAllowed()
    (tmp_path / "model.skops").write_bytes(sio.dumps(state))
    with pytest.raises(UntrustedModelError, match="NotAllowed"):
        BaselineClassifier.from_pretrained(tmp_path)
    # a function reference (the classic pickle attack vector) is refused too
    state.pop("extra")
    state["hook"] = eval
    (tmp_path / "model.skops").write_bytes(sio.dumps(state))
    with pytest.raises(UntrustedModelError, match="eval"):
        BaselineClassifier.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "extra,name",
    [
        # all three are trusted by skops' defaults, so get_untrusted_types() alone would let them through
        (lambda: __import__("sklearn.linear_model").linear_model.LogisticRegression(), "LogisticRegression"),
        (lambda: np.add, "add"),
        (lambda: np.float32(1.5), "float32"),
    ],
)
def test_types_skops_trusts_by_default_are_refused_too(model, tmp_path, extra, name):
    import skops.io as sio

    model.save_pretrained(tmp_path)
    state = sio.load(tmp_path / "model.skops", trusted=None)
    state["extra"] = extra()
    (tmp_path / "model.skops").write_bytes(sio.dumps(state))
    with pytest.raises(UntrustedModelError, match=name):
        BaselineClassifier.from_pretrained(tmp_path)
    (tmp_path / "model.skops").write_bytes(b"not a zip")
    with pytest.raises(UntrustedModelError, match="not a readable skops file"):
        BaselineClassifier.from_pretrained(tmp_path)


def test_from_pretrained_rejects_other_folders(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen3_vl"}')
    with pytest.raises(ValueError, match="model_type"):
        BaselineClassifier.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):
        BaselineClassifier.from_pretrained(tmp_path / "missing")


def test_a_config_that_is_not_json_is_named_and_is_not_a_baseline_folder(tmp_path):
    from hf_spamguard.files import SidecarError

    assert not is_baseline_folder(tmp_path)  # no config.json
    (tmp_path / "config.json").write_text("{not json")
    assert not is_baseline_folder(tmp_path)
    with pytest.raises(SidecarError, match="config.json: not valid JSON"):
        BaselineClassifier.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "qwen3_vl"}')
    assert not is_baseline_folder(tmp_path)


def test_the_two_stage_model_holds_only_trusted_types(model, tmp_path):
    import skops.io as sio

    from hf_spamguard.baseline import TRUSTED_TYPES, skops_types

    model.save_pretrained(tmp_path)
    path = tmp_path / "model.skops"
    assert sio.get_untrusted_types(file=path) == []  # arrays and built-ins only: no estimator inside
    assert skops_types(path) <= set(TRUSTED_TYPES)
    state = sio.load(path, trusted=None)
    assert set(state["stage2"]) == {"feature", "threshold", "value", "baseline", "n_features"}
    assert state["stage2_calibration"]["kind"] in ("none", "platt")


def test_a_folder_of_the_previous_format_is_refused_with_what_to_do(model, tmp_path):
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["format_version"] = 1
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="format_version 1.*spamguard baseline train"):
        BaselineClassifier.from_pretrained(tmp_path)
