"""The prepared GPU check (issue #14): ``benchmarks/gpu_check.py --tiny`` end to end on CPU (the same code
as the CUDA run, on the tiny model), the guards of its report, and the sizing of ``scripts/gpu_wheels.sh``
offline (fake wheels from a local folder: no network)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "benchmarks" / "gpu_check.py"
WHEEL_SCRIPT = REPO / "scripts" / "gpu_wheels.sh"
SECTIONS = ["environment", "model", "train_lora", "train_qlora", "scoring", "unsloth", "vllm"]


def _no_nan(text: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-finite number {name} in the JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def tiny_check(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, str]:
    out = tmp_path_factory.mktemp("gpu_check")
    # One intra-op thread: on a loaded 2-core machine spinning OpenMP threads made steps much slower.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(CHECK), "--tiny", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert time.monotonic() - started < 300, "the tiny check must stay quick"
    data = _no_nan((out / "gpu_check.json").read_text())
    return data, (out / "gpu_check.md").read_text(), proc.stdout


def test_every_section_is_reported_and_skips_say_why(tiny_check) -> None:
    data, _, stdout = tiny_check
    assert data["mode"] == "tiny" and data["running"] is None and data["finished"]
    assert list(data["sections"]) == SECTIONS
    for name, entry in data["sections"].items():
        assert entry["status"] in ("ok", "skipped"), (name, entry)
        if entry["status"] == "skipped":
            assert entry["reason"].strip(), name
        else:
            assert entry["summary"].strip(), name
        assert f"[gpu_check] {name}" in stdout  # progress per section
    sections = data["sections"]
    assert "CUDA" in sections["unsloth"]["reason"] and "CUDA" in sections["vllm"]["reason"]
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    assert sections["train_qlora"]["status"] == ("ok" if has_bnb else "skipped")


def test_training_sections_measure_the_projects_trainer(tiny_check) -> None:
    data, _, _ = tiny_check
    for name in ("train_lora", "train_qlora"):
        entry = data["sections"][name]
        if entry["status"] == "skipped":
            assert "bitsandbytes" in entry["reason"]
            continue
        assert entry["backend"] == "transformers" and entry["quantized"] is (name == "train_qlora")
        assert entry["steps_done"] == entry["warmup_steps"] + entry["timed_steps"] == 4
        assert entry["samples_per_s"] > 0 and entry["seconds_per_step"] > 0
        # One repeated batch: the loss of every step is finite and it falls.
        assert len(entry["losses"]) == 4 and entry["losses_finite"] and entry["loss_falling"], entry["losses"]
        assert entry["tokens_per_sample"] > entry["trained_tokens_per_sample"] > 0
        assert entry["image_tokens_per_sample"] == 4  # 64 px photos: 2x2 merged 32 px tokens
        assert entry["gradient_checkpointing"] is True  # the CUDA run's setting, exercised here
        assert entry["peak_gpu_gib"] is None  # CPU


def test_scoring_section_measures_the_pipeline(tiny_check) -> None:
    entry = tiny_check[0]["sections"]["scoring"]
    assert entry["all_valid"] is True
    for key in ("batch_8", "batch_32", "batch_8_reasons"):
        run = entry[key]
        assert run["items"] >= int(key.split("_")[1]) and run["items_per_s"] > 0
        assert run["valid_verdicts"] == run["items"]


def test_the_2b_shape_is_checked_on_the_meta_device(tiny_check) -> None:
    model = tiny_check[0]["sections"]["model"]
    assert model["params"]["total"] < 1e6  # the tiny model ran
    shape = model["qwen3_vl_2b_params"]
    # What Qwen3-VL-2B-Instruct's sizes give (2.13 B, 0.41 B of them in the vision tower).
    assert shape == {"total": 2_127_532_032, "vision": 406_957_056, "language": 1_720_574_976}


def test_markdown_table_has_a_row_per_section(tiny_check) -> None:
    data, md, stdout = tiny_check
    assert "| section | status | result | seconds |" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| section")]
    assert [r.split("|")[1].strip() for r in rows] == SECTIONS
    vllm = next(r for r in rows if r.startswith("| vllm "))
    assert "skipped" in vllm and data["sections"]["vllm"]["reason"] in vllm
    assert md in stdout  # the final table is printed too


# --------------------------------------------------------------------------------------------------
# The report's guards and the QLoRA skip, in-process (no model)
# --------------------------------------------------------------------------------------------------


def _load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM"):
        monkeypatch.setenv(var, os.environ.get(var, "1"))  # the script's setdefault is undone afterwards
    monkeypatch.setattr(sys, "path", list(sys.path))  # restored afterwards (the script adds its folder)
    monkeypatch.delitem(sys.modules, "gpu_check_report", raising=False)
    spec = importlib.util.spec_from_file_location(f"_test_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_failing_section_does_not_lose_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report_mod = _load("gpu_check_report", monkeypatch)
    report = report_mod.Report(tmp_path, {"mode": "test", "model": "none"}, deadline=time.monotonic() + 60)

    def boom() -> dict:
        raise RuntimeError("CUDA out of memory (simulated)")

    def skipped() -> dict:
        raise report_mod.Skipped("bitsandbytes not importable")

    report.run("first", lambda: {"summary": "fine", "rate": 2.5, "nan": float("nan")})
    report.run("broken", boom)
    report.run("skipped", skipped)
    report.run("late", lambda: {"summary": "never runs"}, needs_s=3600)
    data = _no_nan((tmp_path / "gpu_check.json").read_text())
    sections = data["sections"]
    assert [sections[k]["status"] for k in sections] == ["ok", "failed", "skipped", "skipped"]
    assert sections["first"]["rate"] == 2.5 and sections["first"]["nan"] is None
    assert sections["broken"]["error"] == "RuntimeError: CUDA out of memory (simulated)"
    assert any("boom" in line for line in sections["broken"]["traceback"])
    assert sections["skipped"]["reason"] == "bitsandbytes not importable"
    assert sections["late"]["reason"].startswith("time budget")
    assert report.failed == ["broken"]
    md = (tmp_path / "gpu_check.md").read_text()
    assert "| broken | failed | RuntimeError: CUDA out of memory (simulated) |" in md


def test_a_section_under_way_is_named_when_the_run_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report_mod = _load("gpu_check_report", monkeypatch)
    report = report_mod.Report(tmp_path, {"mode": "test", "model": "none"}, deadline=time.monotonic() + 60)

    def look() -> dict:  # what a time limit killing the run now would leave behind
        seen = json.loads((tmp_path / "gpu_check.json").read_text())
        return {"running_seen": seen["running"], "md": (tmp_path / "gpu_check.md").read_text()}

    entry = report.run("slow", look)
    assert entry["running_seen"] == "slow" and "| slow | interrupted |" in entry["md"]


def test_qlora_is_skipped_with_the_reason_without_bitsandbytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = _load("gpu_check", monkeypatch)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes -> ImportError
    assert "bitsandbytes not importable" in check.bitsandbytes_problem()
    with pytest.raises(check.Skipped, match="bitsandbytes not importable.*QLoRA not measured"):
        check.run_training(tmp_path / "no-model", tmp_path, mode="tiny", cuda=False, quantized=True)


# --------------------------------------------------------------------------------------------------
# scripts/gpu_wheels.sh, offline
# --------------------------------------------------------------------------------------------------


def _fake_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    dist = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    meta = {
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    entries = {**files, **meta}
    record = "".join(f"{n},,\n" for n in entries) + f"{dist}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in {**entries, f"{dist}.dist-info/RECORD": record.encode()}.items():
            zf.writestr(n, data)
    return path


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake wheel for every package the script pins; bitsandbytes with three 1 MiB libraries."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    specs = re.findall(r'^\s+"([A-Za-z0-9_.-]+)==([^|"]+)\|', WHEEL_SCRIPT.read_text(), flags=re.M)
    assert len(specs) >= 10 and ("bitsandbytes", "0.50.2") in specs
    for name, version in specs:
        files = {f"{name.replace('-', '_')}/__init__.py": b""}
        if name == "bitsandbytes":
            for lib in ("cpu", "cuda118", "cuda130"):
                files[f"bitsandbytes/libbitsandbytes_{lib}.so"] = os.urandom(1024 * 1024)
        _fake_wheel(folder, name, version, files)
    return folder


def _wheels(wheelhouse: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(WHEEL_SCRIPT), "--from", str(wheelhouse), "--out", str(out), *args],
        capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip


def test_wheel_script_prints_sizes_and_the_total(wheelhouse: Path, tmp_path: Path) -> None:
    proc = _wheels(wheelhouse, tmp_path / "whl")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = sorted(p.name for p in (tmp_path / "whl").glob("*.whl"))
    assert len(names) == len(list(wheelhouse.glob("*.whl"))) + 1  # + the project's own wheel
    assert any(n.startswith("hf_spamguard-") for n in names)
    for name in names:
        assert name in proc.stdout
    assert re.search(r"total carried\s+\d+\.\d\d\s+of 64 MiB \(\d+\.\d\d MiB left\)", proc.stdout), (
        proc.stdout
    )
    assert "working tree" in proc.stdout and "fits:" in proc.stdout


def test_wheel_script_slims_bitsandbytes_to_cuda13(wheelhouse: Path, tmp_path: Path) -> None:
    proc = _wheels(wheelhouse, tmp_path / "whl", "--slim")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (bnb,) = (tmp_path / "whl").glob("bitsandbytes-*.whl")
    with zipfile.ZipFile(bnb) as zf:
        names = set(zf.namelist())
        record = zf.read("bitsandbytes-0.50.2.dist-info/RECORD").decode()
    assert (
        "bitsandbytes/libbitsandbytes_cuda130.so" in names and "bitsandbytes/libbitsandbytes_cpu.so" in names
    )
    assert "bitsandbytes/libbitsandbytes_cuda118.so" not in names and "cuda118" not in record
    assert "bitsandbytes slimmed" in proc.stdout


def test_wheel_script_says_what_does_not_fit(wheelhouse: Path, tmp_path: Path) -> None:
    proc = _wheels(wheelhouse, tmp_path / "whl", "--budget-mib", "0.5")
    assert proc.returncode == 1
    assert "does not fit: evaluate==0.4.6 dropped (not used by the check)" in proc.stdout
    assert "does not fit: bitsandbytes==0.50.2 dropped (the check skips QLoRA" in proc.stdout
    assert "DOES NOT FIT" in proc.stderr
    left = {p.name.split("-")[0] for p in (tmp_path / "whl").glob("*.whl")}
    assert {"trl", "datasets", "transformers", "hf_spamguard"} <= left and "evaluate" not in left
