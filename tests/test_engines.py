"""The engine choice outside vLLM's environment: what vLLM is served, the errors without it, and the
engine as part of a labelling job's identity. (The engines' parity runs in tests/test_vllm_engine.py
and tests/reviews/test_vllm_teacher.py, in the vLLM environment.)"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest

from hf_spamguard.files import VIDEO_PROCESSOR_CONFIG_FILE
from hf_spamguard.vllm_engine import _serving_folder, vllm_available  # imports without vLLM
from tests.cli_run import spamguard

no_vllm = pytest.mark.skipif(vllm_available(), reason="vLLM is installed here: the error cannot happen")


def test_tiny_model_runs_in_both_engines(tiny_model_dir: Path) -> None:
    config = json.loads((tiny_model_dir / "config.json").read_text())["text_config"]
    assert config["head_dim"] >= 32  # vLLM's CPU attention has no kernel below 32
    assert sum(config["rope_parameters"]["mrope_section"]) == config["head_dim"] // 2
    assert (tiny_model_dir / VIDEO_PROCESSOR_CONFIG_FILE).is_file()


def test_vllm_sees_a_stock_processor_view_and_the_folder_is_untouched(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "m"))
    (folder / VIDEO_PROCESSOR_CONFIG_FILE).unlink()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with contextlib.ExitStack() as stack:
        view = _serving_folder(folder, stack)
        assert view != folder
        for name in ("processor_config.json", "tokenizer_config.json"):
            assert json.loads((view / name).read_text())["processor_class"] == "Qwen3VLProcessor"
        video = json.loads((view / VIDEO_PROCESSOR_CONFIG_FILE).read_text())
        assert video["video_processor_type"] == "Qwen3VLVideoProcessor" and video["patch_size"] == 16
        assert (view / "model.safetensors").resolve() == (folder / "model.safetensors").resolve()
    assert not view.exists()  # removed with the engine
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@no_vllm
@pytest.mark.parametrize("command", ["predict", "label"])
def test_engine_vllm_without_vllm_is_one_line(command: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    args = {
        "predict": [
            "--model",
            str(tiny_model_dir),
            "--dataset",
            str(tmp_path),
            "--out",
            str(tmp_path / "p.jsonl"),
        ],
        "label": ["--teacher", str(tiny_model_dir), "--input", str(tmp_path), "--out", str(tmp_path / "l")],
    }[command]
    run = spamguard(command, *args, "--engine", "vllm")
    assert run.returncode == 1, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "vllm is not installed" in lines[0] and "vllm-cpu-env.sh" in lines[0], (
        run.stderr
    )
    assert not (tmp_path / "l").exists()


def test_engine_is_checked(tmp_path: Path) -> None:
    from hf_spamguard.predict import check_engine
    from hf_spamguard.reviews.config import LabelingConfig

    with pytest.raises(ValueError, match="engine must be one of transformers, vllm, got 'ray'"):
        check_engine("ray")
    with pytest.raises(ValueError, match="--engine vllm scores VLM folders"):
        check_engine("vllm", "baseline")
    with pytest.raises(ValueError, match="engine must be transformers or vllm"):
        LabelingConfig(teacher="t", input="i", out="o", engine="sglang")
    run = spamguard("predict", "--model", "m", "--dataset", "d", "--out", "o", "--engine", "sglang")
    assert run.returncode == 2 and "'sglang' is not one of transformers, vllm" in run.stderr


def test_the_engine_is_part_of_the_labelling_job(tiny_model_dir: Path, tmp_path: Path) -> None:
    from hf_spamguard.files import MANIFEST_FILE
    from hf_spamguard.reviews.labeling import LabelingConfig, label_reviews, read_manifest
    from hf_spamguard.reviews.synthetic import write_generated_reviews

    reviews = write_generated_reviews(tmp_path / "reviews.csv", n=6, seed=1)
    out = tmp_path / "job"
    base = {"teacher": str(tiny_model_dir), "input": str(reviews), "out": str(out), "shard_size": 3}
    label_reviews(LabelingConfig(**base), progress=False)
    assert read_manifest(out)["engine"] == "transformers"
    with pytest.raises(ValueError, match=r"different 'engine' \('transformers' there, 'vllm' now\)"):
        label_reviews(LabelingConfig(**base, engine="vllm"), progress=False)
    # A job recorded before engines existed ran on transformers: it resumes with the default engine
    # (and records it), and refuses vLLM.
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    del manifest["engine"]
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert label_reviews(LabelingConfig(**base), progress=False).shards_labelled_now == 0
    with pytest.raises(ValueError, match=r"different 'engine' \('transformers' there, 'vllm' now\)"):
        label_reviews(LabelingConfig(**base, engine="vllm"), progress=False)
