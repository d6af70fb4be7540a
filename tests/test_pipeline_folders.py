"""Model folders: peft adapters and merged models load; saved folders run without hf_spamguard installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import hf_spamguard  # noqa: F401 - registers the task
from hf_spamguard.pipeline import load_pipeline, save_calibration, save_pipeline_files

INPUTS = ["Nike tee. tags: adidas puma gucci", "plain summer dress, worn once"]


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real peft LoRA adapter on the tiny model, with non-zero weights so that it changes the scores."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    torch.manual_seed(1)
    config = LoraConfig(
        r=4,
        lora_alpha=16,
        target_modules=r".*language_model.*\.(q_proj|v_proj)",
        init_lora_weights=False,
    )
    out = tmp_path_factory.mktemp("adapter")
    get_peft_model(base, config).save_pretrained(out)
    assert (out / "adapter_config.json").is_file() and not (out / "config.json").exists()
    return out


def _confidences(outputs: list[dict]) -> list[float]:
    return [o["confidence"] for o in outputs]


def test_adapter_folders_load_merged_and_unmerged(tiny_model_dir: Path, adapter_dir: Path) -> None:
    from transformers import pipeline

    base = _confidences(load_pipeline(tiny_model_dir, device="cpu")(INPUTS, reason=False))
    merged = _confidences(load_pipeline(adapter_dir, device="cpu")(INPUTS, reason=False))
    # transformers' own peft integration (adapter attached, not merged) through pipeline():
    with pytest.warns(UserWarning, match="model_dir"):
        attached_pipe = pipeline("listing-spam", model=str(adapter_dir), device="cpu")
    attached = _confidences(attached_pipe(INPUTS, reason=False))
    assert merged == pytest.approx(attached, abs=1e-5)
    assert max(abs(a - b) for a, b in zip(merged, base, strict=True)) > 1e-4  # the adapter is applied


def test_adapter_folder_cannot_carry_remote_code(adapter_dir: Path) -> None:
    with pytest.raises(ValueError, match="merge it first"):
        save_pipeline_files(adapter_dir)
    with pytest.raises(FileNotFoundError, match="not found"):
        save_pipeline_files(adapter_dir / "nowhere")


def test_merged_folder_runs_where_hf_spamguard_is_not_installed(adapter_dir: Path, tmp_path: Path) -> None:
    from hf_spamguard.modeling import merge_adapter

    folder = merge_adapter(adapter_dir, tmp_path / "merged")
    save_calibration(folder, 2.0)
    save_pipeline_files(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"]["listing-spam"]["impl"] == "spamguard_pipeline.ListingSpamPipeline"
    for code in folder.glob("spamguard_*.py"):
        assert "hf_spamguard." not in "\n".join(
            line for line in code.read_text().splitlines() if line.lstrip().startswith(("from ", "import "))
        ), code

    expected = load_pipeline(folder, device="cpu")(
        INPUTS, max_reason_tokens=6, policy={"review": 0.3, "demote": 0.9}
    )
    script = textwrap.dedent(
        """
        import json, sys
        # The editable install puts <repo>/src on sys.path: drop it so hf_spamguard cannot be imported.
        sys.path = [p for p in sys.path if not p.rstrip("/").endswith("/src")]
        try:
            import hf_spamguard  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("hf_spamguard is importable in the clean process")
        from transformers import pipeline
        pipe = pipeline("listing-spam", model=sys.argv[1], trust_remote_code=True, device="cpu")
        out = pipe(json.loads(sys.argv[2]), batch_size=2, max_reason_tokens=6, policy={"review": 0.3, "demote": 0.9})
        print("RESULT " + json.dumps({"cls": type(pipe).__module__, "out": out}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(folder), json.dumps(INPUTS)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["cls"].startswith("transformers_modules.")  # the folder's copy, not the package
    got = result["out"]
    assert [sorted(o) for o in got] == [sorted(o) for o in expected]
    assert _confidences(got) == pytest.approx(_confidences(expected), abs=1e-5)
    assert [o["reason"] for o in got] == [o["reason"] for o in expected]
    assert [o["decision"] for o in got] == [o["decision"] for o in expected]


def test_import_is_cheap_and_registers_on_demand(tiny_model_dir: Path) -> None:
    """`import hf_spamguard` must not load torch; the task appears once transformers.pipelines loads."""
    script = textwrap.dedent(
        """
        import sys
        import hf_spamguard
        from hf_spamguard.pipeline import register_pipeline
        register_pipeline()  # idempotent
        assert "torch" not in sys.modules and "transformers.pipelines" not in sys.modules, "heavy import"
        from transformers import pipeline
        from transformers.pipelines import PIPELINE_REGISTRY
        assert "listing-spam" in PIPELINE_REGISTRY.get_supported_tasks()
        register_pipeline()
        pipe = pipeline("listing-spam", model=sys.argv[1], device="cpu")
        print("RESULT", type(pipe).__name__, pipe("abc", reason=False)["is_spam"] in (True, False))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tiny_model_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESULT ListingSpamPipeline True" in proc.stdout
    assert "already registered" not in proc.stderr
