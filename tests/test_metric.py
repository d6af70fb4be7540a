"""The `listing_spam_policy` evaluate metric: in the package and as an exported, self-contained Space."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hf_spamguard.metrics as metrics
from hf_spamguard import policy

PRED = [0.95, 0.90, 0.85, 0.80, 0.70, 0.60, 0.50, 0.40, 0.30, 0.20]
REF = [1, 1, 1, 0, 1, 1, 0, 1, 0, 0]


@pytest.fixture(scope="module")
def metric():
    import evaluate

    return evaluate.load(metrics.path("listing_spam_policy"))


def test_metric_fixed_thresholds_equal_policy(metric):
    out = metric.compute(predictions=PRED, references=REF, review=0.6, demote=0.85)
    expected = policy.flatten_report(policy.evaluate_policy(REF, PRED, policy.Thresholds(0.6, 0.85)))
    for key, value in expected.items():
        assert out[key] == pytest.approx(value) if isinstance(value, float) else out[key] == value, key
    assert out["review_count"] == 3 and out["demote_count"] == 3
    assert out["thresholds_selected"] is False


def test_metric_selects_and_reports_relaxed_targets(metric):
    for p, r in zip(PRED, REF, strict=True):
        metric.add(predictions=p, references=r)
    out = metric.compute(review_budget=0.2)
    assert (out["review_threshold"], out["demote_threshold"]) == (0.7, 0.85)
    assert out["targets_met"] is False
    assert any("recall relaxed" in note for note in out["notes"])


def test_metric_rejects_half_given_thresholds(metric):
    with pytest.raises(ValueError, match="both"):
        metric.compute(predictions=PRED, references=REF, review=0.5)


def test_unknown_metric_name():
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.path("nope")


def test_export_space_is_self_contained(tmp_path):
    folder = metrics.export_space("listing_spam_policy", tmp_path / "space")
    assert folder.name == "listing_spam_policy"
    assert {p.name for p in folder.iterdir()} >= {
        "listing_spam_policy.py",
        "spamguard_policy.py",
        "README.md",
        "app.py",
        "requirements.txt",
    }
    # single source of truth: the Space's policy module is the package's file, verbatim
    copied = (folder / "spamguard_policy.py").read_text()
    assert copied.endswith(Path(policy.__file__).read_text())
    assert (
        "hf_spamguard"
        not in (folder / "listing_spam_policy.py").read_text().split('"""')[-1].split("class")[0]
    )

    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        sys.path[:] = [p for p in sys.path if not (Path(p or ".") / "hf_spamguard").exists()]
        try:
            import hf_spamguard  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("hf_spamguard is importable: the test would prove nothing")
        import evaluate
        m = evaluate.load({str(folder)!r})
        out = m.compute(predictions={PRED!r}, references={REF!r}, review=0.6, demote=0.85)
        print("RESULT" + json.dumps(out))
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    out = json.loads(line[len("RESULT") :])
    expected = policy.flatten_report(policy.evaluate_policy(REF, PRED, policy.Thresholds(0.6, 0.85)))
    assert out["macro_f1"] == pytest.approx(expected["macro_f1"])
    assert out["review_count"] == expected["review_count"] == 3
