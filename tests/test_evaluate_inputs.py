"""`spamguard evaluate` on bad and surprising input (#11.10, #11.13, #12.4, #12.5, #12.7, #12.10).

Bad input is one line naming the file and line, before anything is written; the report folder is
replaced as a whole or not at all; the gallery, table and badges all group by the policy's decision;
the thresholds shown are those the prediction run applied.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hf_spamguard.predict import PredictionsError, read_predictions
from hf_spamguard.report import GALLERY_RULE, write_report
from tests.cli_run import spamguard


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr[-3000:]
    return lines[0]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rows_with(decisions: list[tuple[float, int, str]]) -> list[dict]:
    return [
        {"id": f"r{i}", "is_spam": c >= 0.5, "confidence": c, "reason": "", "decision": d, "label": y}
        for i, (c, y, d) in enumerate(decisions)
    ]


GOOD = rows_with(
    [(0.95, 1, "demote"), (0.9, 0, "demote"), (0.6, 1, "review"), (0.2, 0, "keep"), (0.1, 1, "keep")]
)


# --------------------------------------------------------------------------------- #11.10 bad rows
@pytest.mark.parametrize(
    "lines,expected",
    [
        (
            [
                '{"id": "a", "confidence": 0.9, "label": 1}',
                '{"id": "b", "confidence": 0.1, "label": 0}',
                '{"id": "a", "confidence": 0.2, "label": 0}',
            ],
            "p.jsonl, line 3, field 'id': duplicate id 'a' (first on line 1)",
        ),
        (
            [
                '{"id": "a", "confidence": 0.9, "label": 1, "decision": "demote"}',
                '{"id": "b", "confidence": 0.8, "label": 1, "decision": "delete"}',
            ],
            "p.jsonl, line 2, field 'decision': expected one of keep, review, demote, got 'delete'",
        ),
        (
            [
                '{"id": "a", "confidence": 0.9, "label": 1, "is_spam": true}',
                '{"id": "b", "confidence": 0.1, "label": 0, "is_spam": "false"}',
            ],
            "p.jsonl, line 2, field 'is_spam': expected true or false, got 'false'",
        ),
        (
            ['{"id": "a", "confidence": 0.9, "label": 1}', '{"id": "b", "confidence": 0.1, "label": true}'],
            "p.jsonl, line 2, field 'label': expected 0 or 1, got True",
        ),
        (
            ['{"id": "a", "confidence": 0.9, "label": 1}', '{"id": "b", "confidence": NaN, "label": 0}'],
            "p.jsonl, line 2, field 'confidence': expected a number in [0, 1], got nan",
        ),
    ],
    ids=["duplicate-id", "unknown-decision", "is_spam-string", "label-bool", "confidence-nan"],
)
def test_bad_rows_are_one_line_naming_file_line_and_field(tmp_path, lines, expected):
    preds = tmp_path / "p.jsonl"
    preds.write_text("\n".join(lines) + "\n")
    line = one_line_error(spamguard("evaluate", "--predictions", str(preds), "--out", str(tmp_path / "r")))
    assert line == f"Error: {expected}"
    assert not (tmp_path / "r").exists()  # checked before anything is written


def test_duplicate_ids_compare_as_text(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": 7, "confidence": 0.9}\n{"id": "7", "confidence": 0.1}\n')
    with pytest.raises(PredictionsError, match=r"line 2, field 'id': duplicate id '7' \(first on line 1\)"):
        read_predictions(preds)


def test_non_utf8_predictions_name_the_line(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_bytes(b'{"id": "a", "confidence": 0.9, "label": 1}\n{"id": "b\xff", "confidence": 0.1}\n')
    line = one_line_error(spamguard("evaluate", "--predictions", str(preds), "--out", str(tmp_path / "r")))
    assert line == "Error: p.jsonl, line 2: not UTF-8 text (byte 0xff at byte 10 of the line)"


def test_a_bom_and_null_labels_are_accepted(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_bytes(
        b'\xef\xbb\xbf{"id": "a", "confidence": 0.9, "label": 1}\n\n{"id": "b", "confidence": 0.1, "label": null}\n'
    )
    rows = read_predictions(preds)
    assert [r["id"] for r in rows] == ["a", "b"] and "label" not in rows[1]


def test_a_folder_given_for_a_file_says_what_it_is(tmp_path):
    (tmp_path / "preds").mkdir()
    line = one_line_error(
        spamguard("evaluate", "--predictions", str(tmp_path / "preds"), "--out", str(tmp_path / "r"))
    )
    assert "preds: is a folder; --predictions takes the .jsonl file" in line and "not found" not in line
    # and the other way round: --out an existing file, or a folder that is not a report
    preds = write_rows(tmp_path / "p.jsonl", GOOD)
    (tmp_path / "file").write_text("x")
    line = one_line_error(spamguard("evaluate", "--predictions", str(preds), "--out", str(tmp_path / "file")))
    assert "file: is a file; --out takes the report folder" in line
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep me")
    line = one_line_error(spamguard("evaluate", "--predictions", str(preds), "--out", str(mine)))
    assert "not an earlier report" in line and (mine / "precious.txt").read_text() == "keep me"


def test_unreadable_predictions_are_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip(
            "running as root: file permissions do not stop root (tests/test_predict_failures.py covers it)"
        )
    preds = write_rows(tmp_path / "p.jsonl", GOOD)
    preds.chmod(0)
    line = one_line_error(spamguard("evaluate", "--predictions", str(preds), "--out", str(tmp_path / "r")))
    assert "p.jsonl" in line and "ermission denied" in line


# ----------------------------------------------------------------------- #11.13 all or nothing
def test_a_bad_dataset_leaves_the_previous_report_as_it_was(tmp_path):
    preds = write_rows(tmp_path / "p.jsonl", GOOD)
    report = tmp_path / "report"
    ok = spamguard("evaluate", "--predictions", str(preds), "--out", str(report))
    assert ok.returncode == 0, ok.stderr
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    bad = tmp_path / "bad.tsv"
    bad.write_text("product_id\tdescription\n1\tfoo\n")
    policy = tmp_path / "policy.json"
    policy.write_text('{"review": 0.3, "demote": 0.7}')
    line = one_line_error(
        spamguard(
            "evaluate",
            "--predictions",
            str(preds),
            "--out",
            str(report),
            "--dataset",
            str(bad),
            "--policy",
            str(policy),
        )
    )
    assert "bad.tsv, line 1" in line and "missing column" in line
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before  # not one file rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv", "p.jsonl", "policy.json", "report"]


def test_a_failure_while_writing_keeps_the_old_report_and_leaves_nothing(tmp_path, monkeypatch):
    import hf_spamguard.report as report_mod

    preds = write_rows(tmp_path / "p.jsonl", GOOD)
    report = tmp_path / "report"
    write_report(preds, report)
    before = (report / "metrics.json").read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_mod, "_plot_reliability", boom)
    with pytest.raises(OSError, match=r"cannot write the report to .*report: no space left on device"):
        write_report(preds, report, thresholds={"review": 0.1, "demote": 0.2})
    assert (report / "metrics.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl", "report"]


def test_a_killed_evaluate_leaves_the_old_report_and_the_next_run_cleans_up(tmp_path, sigkill_when):
    preds = write_rows(tmp_path / "p.jsonl", GOOD * 1)
    report = tmp_path / "report"
    write_report(preds, report)
    before = (report / "gallery.html").read_bytes()
    policy = tmp_path / "policy.json"
    policy.write_text('{"review": 0.3, "demote": 0.7}')
    cmd = [
        sys.executable,
        "-m",
        "hf_spamguard",
        "evaluate",
        "--predictions",
        str(preds),
        "--out",
        str(report),
        "--policy",
        str(policy),
    ]
    sigkill_when(cmd, lambda: any(tmp_path.glob(".report.*.tmp")), "evaluate")
    assert (report / "gallery.html").read_bytes() == before  # the kill cost nothing
    ok = spamguard(*cmd[3:])
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl", "policy.json", "report"]
    assert json.loads((report / "metrics.json").read_text())["thresholds"] == {"review": 0.3, "demote": 0.7}


def test_the_report_folder_follows_the_umask(tmp_path):
    report = tmp_path / "report"
    write_report(write_rows(tmp_path / "p.jsonl", GOOD), report)
    umask = os.umask(0)
    os.umask(umask)
    assert report.stat().st_mode & 0o777 == 0o777 & ~umask


def test_counts_must_be_at_least_one(tmp_path):
    preds = write_rows(tmp_path / "p.jsonl", GOOD)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match=r"^per_outcome must be an integer ≥ 1"):
            write_report(preds, tmp_path / "r", per_outcome=bad)
    with pytest.raises(ValueError, match=r"^excerpt_chars must be an integer ≥ 1"):
        write_report(preds, tmp_path / "r", excerpt_chars=0)
    for option in ("--per-section", "--excerpt-chars"):
        proc = spamguard("evaluate", "--predictions", str(preds), "--out", str(tmp_path / "r"), option, "0")
        assert proc.returncode == 2 and f"Invalid value for {option}: 0 is outside [1, inf]" in proc.stderr
    assert not (tmp_path / "r").exists()


# -------------------------------------------------------------------------- #12.5 which thresholds
def sidecar_for(preds: Path, thresholds: dict | None) -> Path:
    data = preds.read_bytes()
    side = preds.with_name(preds.name + ".policy.json")
    side.write_text(
        json.dumps(
            {
                "thresholds": thresholds,
                "model": "models/baseline",
                "predictions": {"file": preds.name, "rows": 5, "sha256": hashlib.sha256(data).hexdigest()},
            }
        )
    )
    return side


def test_evaluate_shows_the_thresholds_predict_applied(tmp_path):
    # decisions made at review 0.5 / demote 0.85: inferring from them would say 0.6 / 0.9
    preds = write_rows(tmp_path / "p.jsonl", GOOD)
    sidecar_for(preds, {"review": 0.5, "demote": 0.85})
    proc = spamguard("evaluate", "--predictions", str(preds), "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert (
        "thresholds: review 0.500, demote 0.850 (applied by spamguard predict: models/baseline)"
        in proc.stdout
    )
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["thresholds"] == {"review": 0.5, "demote": 0.85}
    # an explicit --policy still wins
    policy = tmp_path / "policy.json"
    policy.write_text('{"review": 0.3, "demote": 0.7}')
    metrics = write_report(preds, tmp_path / "r", thresholds=policy)
    assert metrics["thresholds"] == {"review": 0.3, "demote": 0.7} and metrics["thresholds_source"] == "given"


def test_a_stale_sidecar_is_not_trusted(tmp_path):
    preds = write_rows(tmp_path / "p.jsonl", GOOD)
    sidecar_for(preds, {"review": 0.05, "demote": 0.07})  # another run's: disagrees with the decisions
    preds.write_text(
        preds.read_text()
        + json.dumps({"id": "new", "confidence": 0.3, "label": 0, "decision": "keep"})
        + "\n"
    )
    metrics = write_report(preds, tmp_path / "r")
    assert metrics["thresholds_source"] == "inferred from the decisions in the predictions file"
    assert metrics["thresholds"] == {"review": 0.6, "demote": 0.9}
    assert any(n.startswith("ignored p.jsonl.policy.json") for n in metrics["notes"])
    assert any("pass --policy" in n for n in metrics["notes"])


def test_an_edited_file_whose_decisions_still_agree_keeps_its_sidecar(tmp_path):
    preds = write_rows(tmp_path / "p.jsonl", GOOD)
    sidecar_for(preds, {"review": 0.5, "demote": 0.85})
    rows = GOOD[:4]  # a row removed by hand
    write_rows(preds, rows)
    metrics = write_report(preds, tmp_path / "r")
    assert metrics["thresholds"] == {"review": 0.5, "demote": 0.85}
    assert any("changed since p.jsonl.policy.json was written" in n for n in metrics["notes"])


def test_a_model_without_policy_is_said_so(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "decision"} for r in GOOD]
    preds = write_rows(tmp_path / "p.jsonl", rows)
    sidecar_for(preds, None)
    metrics = write_report(preds, tmp_path / "r")
    assert metrics["thresholds_source"] == "selected on these data"
    assert any("has no policy.json" in n for n in metrics["notes"])


# ------------------------------------------------------------------ #12.4 gallery groups by decision
def test_gallery_sections_follow_the_decision(tmp_path):
    # 30 demoted legitimate (confidence ≥ 0.9), 2 kept spam, review 3 spam + 1 legitimate, 4 + 5 correct
    spec = (
        [(0.9 + i / 1000, 0) for i in range(30)]
        + [(0.3, 1), (0.45, 1)]
        + [(0.6, 1), (0.65, 1), (0.7, 1), (0.55, 0)]
        + [(0.95, 1)] * 4
        + [(0.1, 0), (0.2, 0), (0.05, 0), (0.52, 0), (0.4, 0)]
    )
    rows = [
        {"id": f"x{i}", "is_spam": c >= 0.5, "confidence": c, "reason": "r", "label": y}
        for i, (c, y) in enumerate(spec)
    ]
    preds = write_rows(tmp_path / "p.jsonl", rows)
    metrics = write_report(preds, tmp_path / "r", thresholds={"review": 0.53, "demote": 0.9}, per_outcome=24)
    page = (tmp_path / "r" / "gallery.html").read_text()
    assert metrics["gallery"] == {
        "demoted_legitimate": 30,
        "kept_spam": 2,
        "review_spam": 3,
        "review_legitimate": 1,
        "demoted_spam": 4,
        "kept_legitimate": 5,  # 0.52 is is_spam true but kept: it is grouped by what the policy did
    }
    assert sum(metrics["gallery"].values()) == len(rows)
    a = metrics["actions"]
    assert a["demote"]["not_spam"] == 30 and a["keep"]["spam"] == 2 and a["review"]["count"] == 4
    assert "Demoted, legitimate — the costly error (30)" in page and "24 of 30 shown" in page
    assert "Kept, spam — missed (2)" in page and "Correctly kept (5)" in page
    assert html_text(GALLERY_RULE.format(review="0.530", demote="0.900")) in page
    # every badge in a section is the section's decision
    for key, decision in (
        ("demoted_legitimate", "demote"),
        ("kept_spam", "keep"),
        ("review_spam", "review"),
        ("kept_legitimate", "keep"),
    ):
        section = page.split(f'<h2 id="{key}">')[1].split("<h2")[0]
        badges = re.findall(r'class="badge (\w+)"', section)
        assert badges and set(badges) == {decision}, (key, badges)
    assert "truth legitimate · confidence 0.520 (is_spam true)" in page


def html_text(text: str) -> str:
    import html

    return html.escape(text)


def test_plots_label_their_axes_and_bins(tmp_path, monkeypatch):
    import hf_spamguard.report as report_mod

    figures = []
    monkeypatch.setattr(report_mod, "_save_fig", lambda fig, path: figures.append((path.name, fig)))
    monkeypatch.setattr("matplotlib.pyplot.close", lambda fig=None: None)
    write_report(write_rows(tmp_path / "p.jsonl", GOOD), tmp_path / "r")
    figs = dict(figures)
    (sweep,) = figs["threshold_sweep.png"].axes
    assert sweep.get_ylabel()
    reliability, histogram = figs["reliability.png"].axes
    counts = [t.get_text() for t in reliability.texts]
    assert counts and all(t.startswith("n=") for t in counts) and sum(int(t[2:]) for t in counts) == len(GOOD)


# --------------------------------------------------------------------------- #12.10 printed summary
def test_evaluate_prints_a_short_table_not_json(tmp_path):
    preds = write_rows(tmp_path / "p.jsonl", GOOD)
    policy = tmp_path / "policy.json"
    policy.write_text('{"review": 0.8, "demote": 0.8}')  # the review band is empty
    proc = spamguard(
        "evaluate",
        "--predictions",
        str(preds),
        "--out",
        str(tmp_path / "r"),
        "--policy",
        str(policy),
        COLUMNS="40",
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert not out.lstrip().startswith("{") and "roc_auc" not in out
    assert "note: the review band is empty (review = demote = 0.800): nothing goes to human review" in out
    assert not re.search(r"\d\.\d{4,}", out), out  # rounded numbers only
    lines = out.splitlines()
    assert any(re.fullmatch(r"demote\s+2\s+1\s+1\s+0\.500\s+0\.333\s+0\.400", ln) for ln in lines), out
    assert any(ln.startswith("ROC-AUC ") and "Brier" in ln for ln in lines), out  # not wrapped at 40 columns
    assert lines[-1].startswith(f"report written to {tmp_path / 'r'}")


# --------------------------------------------------------------------------- #12.7 ids in other splits
def test_ids_from_another_split_are_found_and_missing_ones_warned(tmp_path, demo_dir):
    from hf_spamguard.data import load_listings

    validation = load_listings(demo_dir, "validation")
    rows = [
        {"id": pid, "confidence": 0.9 if y else 0.1, "label": int(y), "reason": ""}
        for pid, y in zip(validation["product_id"][:6], validation["label"][:6], strict=True)
    ]
    rows += [
        {"id": "nowhere-1", "confidence": 0.5, "label": 1},
        {"id": "nowhere-2", "confidence": 0.4, "label": 0},
    ]
    preds = write_rows(tmp_path / "p.jsonl", rows)
    proc = spamguard(
        "evaluate",
        "--predictions",
        str(preds),
        "--out",
        str(tmp_path / "r"),
        "--dataset",
        str(demo_dir),
        "--split",
        "test",
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stdout.splitlines() if ln.startswith("warning: ")]
    assert warnings == [
        f"warning: 2 of 8 listings are in no split of {demo_dir} ('nowhere-1', 'nowhere-2'): their cards "
        "show no description excerpt or photo"
    ]
    assert "note: 6 listings were found in split 'validation' of the dataset, not 'test'" in proc.stdout
    page = (tmp_path / "r" / "gallery.html").read_text()
    first = validation["description"][0]
    assert html_text(first[:40]) in page
    with pytest.warns(UserWarning, match="2 of 8 listings are in no split"):
        write_report(preds, tmp_path / "r2", dataset=demo_dir, split="test")
