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


# --------------------------------------------------------------------------------------------------
# Broken folders (issue #11.13): one line naming the folder or file, never a traceback
# --------------------------------------------------------------------------------------------------
class _RunsCode:
    """A pickle that is not plain tensors: torch.load(weights_only=True) refuses it."""

    def __reduce__(self):
        return (print, ("this ran",))


def _broken_folders(tiny_model_dir: Path, root: Path) -> dict[str, tuple[Path, str]]:
    """{case: (folder, text the error must contain)} for every way a copied folder can be broken."""
    import shutil

    from safetensors.torch import load_file

    def copy(name: str) -> Path:
        folder = root / name
        shutil.copytree(tiny_model_dir, folder)
        return folder

    cases = {}
    folder = copy("bad_json")
    (folder / "config.json").write_text("{not json")
    cases["bad_json"] = (folder, f"{folder / 'config.json'}: not valid JSON")
    folder = copy("no_weights")
    (folder / "model.safetensors").unlink()
    cases["no_weights"] = (folder, f"{folder}: no model weights")
    folder = copy("truncated")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (folder, f"{folder / 'model.safetensors'}: unreadable safetensors weights")
    folder = copy("pickle")
    (folder / "model.safetensors").unlink()
    torch.save({"weights": _RunsCode()}, folder / "pytorch_model.bin")
    cases["pickle"] = (folder, f"{folder / 'pytorch_model.bin'}: refused by torch.load(weights_only=True)")
    folder = copy("missing_shard")
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}})
    )
    cases["missing_shard"] = (folder, "lists 1 missing shard(s), e.g. model-00002-of-00002.safetensors")
    # A plain-tensor pickle is what weights_only exists for: it still loads.
    folder = copy("plain_bin")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    cases["plain_bin"] = (folder, "")
    return cases


def test_broken_model_folders_fail_in_one_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    from hf_spamguard.modeling import load_model

    for name, (folder, expected) in _broken_folders(tiny_model_dir, tmp_path).items():
        if not expected:
            load_pipeline(folder, device="cpu")("Nike tee", reason=False)
            continue
        with pytest.raises(ValueError) as info:
            load_pipeline(folder, device="cpu")
        message = str(info.value)
        assert expected in message and "\n" not in message, (name, message)
        with pytest.raises(ValueError, match="^" + str(folder).replace("\\", "\\\\")):
            load_model(folder, device="cpu")


def test_cli_predict_names_the_broken_file(tiny_model_dir: Path, tmp_path: Path, demo_dir: Path) -> None:
    cases = _broken_folders(tiny_model_dir, tmp_path / "models")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    for name in ("pickle", "truncated"):
        folder, expected = cases[name]
        proc = subprocess.run(
            [sys.executable, "-m", "hf_spamguard", "predict", "--model", str(folder),
             "--dataset", str(demo_dir / "test.tsv"), "--out", str(tmp_path / f"{name}.jsonl")],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and "this ran" not in proc.stdout + proc.stderr
        errors = [line for line in proc.stderr.splitlines() if "Error" in line]
        assert len(errors) == 1 and expected in errors[0], proc.stderr[-3000:]
        assert not (tmp_path / f"{name}.jsonl").exists()


def test_installed_package_needs_no_trust_remote_code(adapter_dir: Path, tmp_path: Path) -> None:
    """README's snippet on a folder that carries the pipeline code (training's and the demo's merged
    folders): with the package imported, pipeline("listing-spam", model=folder) uses the registered class
    without trust_remote_code, whichever import comes first; trust_remote_code=True still runs the
    folder's own copy."""
    from hf_spamguard.modeling import merge_adapter

    folder = save_pipeline_files(merge_adapter(adapter_dir, tmp_path / "merged"))
    expected = load_pipeline(folder, device="cpu")(INPUTS, reason=False)
    script = textwrap.dedent(
        """
        import json, sys
        if sys.argv[2] == "package-first":
            import hf_spamguard  # noqa: F401
            from transformers import pipeline
        else:
            from transformers import pipeline
            import hf_spamguard  # noqa: F401
        out = {}
        for remote in (None, True):
            kwargs = {} if remote is None else {"trust_remote_code": True}
            pipe = pipeline("listing-spam", model=sys.argv[1], device="cpu", **kwargs)
            out[str(remote)] = {"cls": type(pipe).__module__, "out": pipe(json.loads(sys.argv[3]), reason=False)}
        print("RESULT " + json.dumps(out))
        """
    )
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_MODULES_CACHE=str(tmp_path / "modules"),
        TOKENIZERS_PARALLELISM="false",
    )
    for order in ("package-first", "transformers-first"):
        proc = subprocess.run(
            [sys.executable, "-c", script, str(folder), order, json.dumps(INPUTS)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
        assert result["None"]["cls"] == "hf_spamguard.pipeline", order
        assert result["True"]["cls"].startswith("transformers_modules."), order
        for run in result.values():
            assert _confidences(run["out"]) == pytest.approx(_confidences(expected), abs=1e-5)


def test_python_api_prints_no_library_noise(adapter_dir: Path) -> None:
    """Loading a peft adapter from Python imported bitsandbytes (its "Failed to load CPU gemm_4bit_forward
    from kernels-community" notice) and made peft ask the deprecated `is_gradient_checkpointing`
    (a FutureWarning): both are silenced where this package loads models (issue #12.11)."""
    script = textwrap.dedent(
        """
        import sys
        import hf_spamguard
        from hf_spamguard.pipeline import load_pipeline
        pipe = load_pipeline(sys.argv[1], device="cpu")
        import bitsandbytes  # noqa: F401 - imported by peft already; a re-import is silent anyway
        print("RESULT", pipe("Nike tee", reason=False)["is_spam"] in (True, False))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(adapter_dir)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and "RESULT True" in proc.stdout, proc.stderr[-3000:]
    assert "gemm_4bit_forward" not in proc.stderr and "is_gradient_checkpointing" not in proc.stderr, (
        proc.stderr
    )
