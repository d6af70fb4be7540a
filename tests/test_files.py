"""files.py: the one list of file names, and the one JSON sidecar reader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hf_spamguard import files, pipeline, policy, prompts


def test_policy_keeps_the_same_policy_file_name() -> None:
    # policy.py is copied alone into the metric Space, so it keeps its own copy of the name
    assert policy.POLICY_FILE == files.POLICY_FILE


def test_modules_take_their_names_from_files() -> None:
    assert pipeline.CALIBRATION_FILE == files.CALIBRATION_FILE
    assert pipeline.PROMPT_CONFIG_FILE == prompts.PROMPT_CONFIG_FILE == files.PROMPT_CONFIG_FILE
    assert files.POLICY_FILE in files.SIDECAR_FILES and files.CALIBRATION_FILE in files.SIDECAR_FILES


def test_read_json_gives_missing_for_an_absent_file(tmp_path: Path) -> None:
    assert files.read_json(tmp_path / "nope.json") is None
    assert files.read_json(tmp_path / "nope.json", missing={}) == {}
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert files.read_json(tmp_path / "ok.json") == {"a": 1}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", r"not valid JSON \(Expecting"),
        ("[1, 2]", r"not valid JSON \(expected an object, got list\)"),
        ('"text"', r"not valid JSON \(expected an object, got str\)"),
        (b"\xff\xfe{}", r"not valid JSON \(not UTF-8"),
    ],
)
def test_read_json_has_one_error_format(tmp_path: Path, content: str | bytes, why: str) -> None:
    path = tmp_path / "policy.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(files.SidecarError, match=f"^{re.escape(str(path))}: {why}"):
        files.read_json(path)


def test_read_json_refuses_a_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    with pytest.raises(files.SidecarError, match="config.json: expected a JSON file, found a folder"):
        files.read_json(tmp_path / "config.json")
    assert issubclass(files.SidecarError, ValueError)  # callers catching ValueError keep working
