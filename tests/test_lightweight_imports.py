"""The baseline path is light: `spamguard baseline train` and `spamguard predict` with a baseline never
import torch (the README says so). Checked on the real entry point with ``python -X importtime``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SPAMGUARD = str(Path(sys.executable).with_name("spamguard"))


def _torch(imported: set[str]) -> set[str]:
    return {m for m in imported if m == "torch" or m.startswith("torch.")}


def _imported(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", SPAMGUARD, *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")
    }


def test_the_baseline_cli_never_imports_torch(demo_dataset_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "baseline"
    trained = _imported("baseline", "train", "--dataset", str(demo_dataset_dir), "--out", str(model))
    assert "skops.io" in trained  # the model was written with skops...
    assert _torch(trained) == set()  # ...without scikit-learn's array-api shim pulling in torch
    predicted = _imported(
        "predict",
        "--model",
        str(model),
        "--dataset",
        str(demo_dataset_dir),
        "--out",
        str(tmp_path / "p.jsonl"),
    )
    # ...and read back without skops at all (a plain reader of its arrays: scikit-learn and SciPy cost
    # 1-2 s of start-up; hf_spamguard.baseline.persistence._load_plain)
    assert "skops.io" not in predicted and "sklearn" not in predicted and _torch(predicted) == set()
    assert (tmp_path / "p.jsonl").read_text().count("\n") == 45


def test_skops_still_trusts_the_same_estimators_without_the_shim() -> None:
    # The list skops builds at import must not change when the torch shim is refused.
    code = (
        "import sys\n"
        "from hf_spamguard.baseline.persistence import _skops_io\n"
        "_skops_io()\n"
        "from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES as names\n"
        "print(len(names), 'torch' in sys.modules)\n"
    )
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    plain = subprocess.run(
        [sys.executable, "-c", code.replace("_skops_io()", "import skops.io")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert light.returncode == 0 and plain.returncode == 0, light.stderr + plain.stderr
    assert light.stdout.split()[0] == plain.stdout.split()[0]
    assert light.stdout.split()[1] == "False"
