"""``spamguard evaluate``: the evaluation report of a predictions file.

Writes a report folder: ``metrics.json`` (policy evaluation from :mod:`hf_spamguard.policy`),
``threshold_sweep.png``, ``reliability.png`` and ``gallery.html`` (listings with description excerpts,
thumbnails when the dataset is given and has images, confidence, reason and decision). Every string
from the data is HTML-escaped.

**One rule for every number and section.** ``confidence`` is the calibrated probability of spam and
``is_spam`` is ``confidence >= 0.5`` (the model's belief); what happens to a listing is the *decision*
of the policy (keep / review / demote at the thresholds shown), and the report groups by that decision
only: the action table, the gallery's sections (*demoted, legitimate* — the costly error; *kept, spam*
— missed; the *review queue* split by truth; *correctly demoted*; *correctly kept*) and every badge.

**Which thresholds.** ``thresholds=`` when given (``--policy``); else those the prediction run applied,
read from the sidecar ``<predictions>.policy.json`` that ``spamguard predict`` writes; else thresholds
inferred from the rows' decisions (marked as such); else thresholds selected on these data (marked as
optimistic).

**All or nothing.** Every input (predictions, policy, dataset) is read and checked before anything is
written; the folder is built in a temporary folder beside ``out_dir`` and swapped in when complete, so a
failure (bad input, a full disk, a kill) leaves the previous report as it was, and the next run removes
what a killed one left beside it. ``out_dir`` must be new, empty or an earlier report: it is replaced as
a whole.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hf_spamguard.atomic import atomic_path, atomic_write_json, atomic_write_text
from hf_spamguard.files import GALLERY_FILE, METRICS_FILE
from hf_spamguard.policy import (
    Thresholds,
    as_thresholds,
    decide,
    evaluate_policy,
    reliability_curve,
    select_thresholds,
    threshold_sweep,
)
from hf_spamguard.predict import (
    check_count,
    io_errors,
    policy_sidecar,
    read_prediction_policy,
    read_predictions,
)

SWEEP_FILE = "threshold_sweep.png"
RELIABILITY_FILE = "reliability.png"
THUMBNAIL_DIR = "thumbnails"

#: Gallery sections: ``(key, decision, label, title, most confident first)``; in this order on the page.
SECTIONS: tuple[tuple[str, str, int, str, bool], ...] = (
    ("demoted_legitimate", "demote", 0, "Demoted, legitimate — the costly error", True),
    ("kept_spam", "keep", 1, "Kept, spam — missed", False),
    ("review_spam", "review", 1, "Review queue, spam", True),
    ("review_legitimate", "review", 0, "Review queue, legitimate", True),
    ("demoted_spam", "demote", 1, "Correctly demoted", True),
    ("kept_legitimate", "keep", 0, "Correctly kept", False),
)

#: The rule the gallery states in its header (and the README repeats); ``{review}`` / ``{demote}`` are the
#: thresholds of the report.
GALLERY_RULE = (
    "confidence is the calibrated probability of spam, and is_spam is confidence ≥ 0.5 (the model's "
    "belief). What happens to a listing is the decision of the policy: demote from confidence {demote}, "
    "review from {review}, keep below. Every count, section and badge on this page groups by that decision "
    "and compares it with the true label, so a listing can be is_spam true and still be kept."
)


class ReportWarning(UserWarning):
    """Something the report could not do fully (e.g. listings not found in the dataset)."""


# ----------------------------------------------------------------------------------------- thresholds
def _infer_thresholds(rows: list[dict[str, Any]]) -> Thresholds | None:
    """Thresholds that reproduce the ``decision`` fields of the rows (None when rows carry none)."""
    dec = [(r.get("decision"), float(r["confidence"])) for r in rows if r.get("decision")]
    if not dec:
        return None
    demote = [c for d, c in dec if d == "demote"]
    flagged = [c for d, c in dec if d in ("review", "demote")]
    d = min(demote) if demote else 1.0
    r = min(flagged) if flagged else d
    return Thresholds(review=min(r, d), demote=d)


def _resolve_thresholds(
    given: Any, predictions: Path, labelled: list[dict[str, Any]], y: np.ndarray, conf: np.ndarray
) -> tuple[Thresholds, str, list[str], dict[str, Any] | None]:
    """``(thresholds, where they come from, notes, sidecar)``, by the rule in the module docstring."""
    notes: list[str] = []
    th = as_thresholds(given)
    if th is not None:  # --policy wins over everything the predictions file says
        return th, "given", notes, None
    sidecar = read_prediction_policy(predictions)
    if sidecar is not None and not sidecar["matches_file"]:
        # Edited since predict wrote it (or the sidecar is another run's): trusted only while the
        # thresholds it records still give every decision the file holds.
        with_decision = [r for r in labelled if r.get("decision")]
        th_side = sidecar.get("thresholds")
        if th_side is None:
            agree = not with_decision
        else:
            given_now = decide([float(r["confidence"]) for r in with_decision], th_side)
            agree = all(r["decision"] == d for r, d in zip(with_decision, given_now, strict=True))
        name = policy_sidecar(predictions).name
        if agree:
            notes.append(
                f"{predictions.name} changed since {name} was written; its decisions still agree with it"
            )
        else:
            notes.append(f"ignored {name}: it was written for another version of {predictions.name}")
            sidecar = None
    if sidecar is not None and sidecar.get("thresholds") is not None:
        return Thresholds.from_dict(sidecar["thresholds"]), "applied by spamguard predict", notes, sidecar
    if sidecar is None:
        th = _infer_thresholds(labelled)
        if th is not None:
            notes.append(
                "thresholds inferred from the decisions in the file (lowest reviewed / demoted confidence): "
                "the model's own may be lower; pass --policy MODEL_FOLDER to show them"
            )
            return th, "inferred from the decisions in the predictions file", notes, sidecar
    else:
        notes.append("the model that wrote these predictions has no policy.json (no decisions were made)")
    if 0 < y.sum() < y.size:
        selection = select_thresholds(y, conf)
        notes += ["thresholds selected on the evaluated data itself (optimistic)"] + selection.notes
        return selection.thresholds, "selected on these data", notes, sidecar
    return Thresholds(0.5, 0.5), "default 0.5", notes, sidecar


# ---------------------------------------------------------------------------------------------- plots
def _plot_sweep(labels: np.ndarray, conf: np.ndarray, th: Thresholds, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = threshold_sweep(labels, conf)
    t = np.asarray(sweep["threshold"])

    def arr(key: str) -> np.ndarray:
        return np.asarray([np.nan if v is None else v for v in sweep[key]], dtype=float)

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    ax.plot(t, arr("precision"), label="precision of conf ≥ t")
    ax.plot(t, arr("recall"), label="spam recall of conf ≥ t")
    ax.plot(t, arr("share_flagged"), label="share of items with conf ≥ t", linestyle=":")
    ax.axvline(th.review, color="tab:orange", linestyle="--", label=f"review ≥ {th.review:.3f}")
    ax.axvline(th.demote, color="tab:red", linestyle="--", label=f"demote ≥ {th.demote:.3f}")
    ax.set_xlabel("threshold t on the spam confidence")
    ax.set_ylabel("precision / recall / share of items")
    ax.set_ylim(0, 1.02)
    ax.set_title("Threshold sweep")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    _save_fig(fig, path)
    plt.close(fig)


def _plot_reliability(labels: np.ndarray, conf: np.ndarray, path: Path, n_bins: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = reliability_curve(labels, conf, n_bins)
    edges = np.asarray(curve["bin_edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    rate = np.asarray([np.nan if v is None else v for v in curve["spam_rate"]], dtype=float)
    mean_conf = np.asarray([np.nan if v is None else v for v in curve["mean_confidence"]], dtype=float)
    counts = curve["count"]
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5.2, 5.8), dpi=110, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    ax.bar(centres, rate, width=edges[1] - edges[0], alpha=0.35, edgecolor="black", label="spam rate per bin")
    ax.plot(mean_conf, rate, marker="o", label="mean confidence vs spam rate")
    for x, r, c in zip(centres, rate, counts, strict=True):
        if c:  # how many listings each bar stands for: a bar of 2 says little
            ax.annotate(f"n={c}", (x, r), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("observed spam rate")
    ax.set_title("Reliability diagram (n = listings per bin)")
    ax.legend(fontsize=8, loc="upper left")
    axh.bar(centres, counts, width=edges[1] - edges[0], color="tab:gray")
    for x, c in zip(centres, counts, strict=True):
        axh.annotate(str(c), (x, c), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)
    axh.set_xlim(0, 1)
    axh.set_ylim(0, max(max(counts), 1) * 1.25)
    axh.set_xlabel("spam confidence")
    axh.set_ylabel("listings")
    fig.tight_layout()
    _save_fig(fig, path)
    plt.close(fig)


def _save_fig(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


# -------------------------------------------------------------------------------------------- dataset
def _index(ds: Any, out: dict[str, dict[str, Any]], wanted: set[str]) -> set[str]:
    """Add the rows of ``ds`` whose id is in ``wanted`` to ``out``; returns the ids found."""
    if "product_id" not in ds.column_names:
        return set()
    ids = [str(i) for i in ds["product_id"]]
    hits = [i for i, pid in enumerate(ids) if pid in wanted and pid not in out]
    cols = [c for c in ("product_id", "description", "image") if c in ds.column_names]
    for row in ds.select(hits).select_columns(cols):
        out[str(row["product_id"])] = row
    return {ids[i] for i in hits}


def _dataset_lookup(
    dataset: Any, split: str | None, ids: list[str]
) -> tuple[dict[str, dict[str, Any]], list[str], list[str]]:
    """``({product_id: {"description", "image"}}, notes, warnings)`` for the ``ids`` of the report.

    ``split`` is searched first; ids it lacks are looked for in the dataset's other splits (a note says
    where they were found), and ids in no split get one warning.
    """
    if dataset is None:
        return {}, [], []
    wanted = set(ids)
    out: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    first: Any = None
    others: Any = None  # () -> {split name: Dataset}, called only when ids are missing
    if hasattr(dataset, "column_names"):  # a Dataset: the one table there is
        first = dataset
    elif hasattr(dataset, "keys") and not isinstance(dataset, str | os.PathLike):  # a DatasetDict
        first = dataset.get(split)
        others = lambda: dataset  # noqa: E731
    else:
        from hf_spamguard.data import load_listings

        with io_errors("cannot read the dataset", dataset):
            first = load_listings(dataset, split) if split is not None else None

        def others() -> Any:
            with io_errors("cannot read the dataset", dataset):
                return load_listings(dataset, None)

    if first is not None:
        _index(first, out, wanted)
    if wanted - out.keys() and others is not None:
        for name, ds in others().items():
            if name == split:
                continue
            found = _index(ds, out, wanted)
            if found:
                notes.append(
                    f"{len(found)} listings were found in split {name!r} of the dataset, not {split!r}"
                )
    warns = []
    missing = [i for i in ids if i not in out]
    if missing:
        sample = ", ".join(repr(i) for i in missing[:3]) + (", …" if len(missing) > 3 else "")
        warns.append(
            f"{len(missing)} of {len(ids)} listings are in no split of {dataset} ({sample}): their cards "
            "show no description excerpt or photo"
        )
    return out, notes, warns


def _thumbnail(image: Any, path: Path, size: int = 160) -> bool:
    try:
        from PIL import Image

        if isinstance(image, str | os.PathLike):
            image = Image.open(image)
        if image is None:
            return False
        img = image.convert("RGB")
        img.thumbnail((size, size))
        img.save(path, format="JPEG", quality=85)
        return True
    except Exception:  # a broken image must not break the report; the card shows no thumbnail
        return False


# -------------------------------------------------------------------------------------------- gallery
_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:28px} .rule{background:#f3f6fa;padding:8px 12px;
border-left:4px solid #789;font-size:.92em} .sample{font-weight:normal;color:#666;font-size:.85em}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px;background:#fafafa}
.card img{max-width:160px;max-height:160px;float:right;margin-left:8px;border-radius:4px}
.meta{font-size:.85em;color:#555} .desc{font-size:.9em;white-space:pre-wrap;word-break:break-word}
.reason{font-style:italic} .badge{font-weight:bold;padding:0 4px;border-radius:3px}
.keep{color:#2a7} .review{color:#c80} .demote{color:#c22} .note{color:#a40}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}
nav a{margin-right:12px}
"""


def _card_html(
    row: dict[str, Any], decision: str, info: dict[str, Any], thumb: str | None, excerpt_chars: int
) -> str:
    esc = html.escape
    desc = str(info.get("description") or row.get("description") or "")
    if len(desc) > excerpt_chars:
        desc = desc[: excerpt_chars - 1] + "…"
    conf = float(row["confidence"])
    truth = "spam" if int(row["label"]) == 1 else "legitimate"
    parts = ['<div class="card">']
    if thumb:
        parts.append(f'<img src="{esc(thumb)}" alt="listing photo">')
    parts.append(
        f'<div class="meta">id <b>{esc(str(row.get("id")))}</b> · truth {truth} · confidence {conf:.3f}'
        f" (is_spam {'true' if conf >= 0.5 else 'false'}) · "
        f'<span class="badge {esc(decision)}">{esc(decision)}</span></div>'
    )
    parts.append(f'<div class="reason">{esc(str(row.get("reason") or ""))}</div>')
    if desc:
        parts.append(f'<div class="desc">{esc(desc)}</div>')
    parts.append("</div>")
    return "".join(parts)


def _sections_html(
    labelled: list[dict[str, Any]],
    decisions: np.ndarray,
    lookup: dict[str, dict[str, Any]],
    folder: Path,
    per_section: int,
    excerpt_chars: int,
) -> tuple[str, str, dict[str, int]]:
    """``(navigation, sections, counts per section)``; thumbnails are written into ``folder``."""
    nav, sections, counts = [], [], {}
    for key, decision, label, title, confident_first in SECTIONS:
        items = [
            (r, d)
            for r, d in zip(labelled, decisions, strict=True)
            if d == decision and int(r["label"]) == label
        ]
        items.sort(
            key=lambda rd: -float(rd[0]["confidence"]) if confident_first else float(rd[0]["confidence"])
        )
        counts[key] = len(items)
        cards = []
        for r, d in items[:per_section]:
            info = lookup.get(str(r.get("id")), {})
            thumb_rel = None
            if info.get("image") is not None:
                (folder / THUMBNAIL_DIR).mkdir(exist_ok=True)
                name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(r.get("id")))[:80]
                if _thumbnail(info["image"], folder / THUMBNAIL_DIR / f"{name}.jpg"):
                    thumb_rel = f"{THUMBNAIL_DIR}/{name}.jpg"
            cards.append(_card_html(r, str(d), info, thumb_rel, excerpt_chars))
        order = "most confident first" if confident_first else "least confident first"
        shown = f"{len(cards)} of {len(items)} shown, " if len(items) > len(cards) else ""
        nav.append(f'<a href="#{key}">{html.escape(title.split(" — ")[0])} ({len(items)})</a>')
        sections.append(
            f'<h2 id="{key}">{html.escape(title)} ({len(items)}) '
            f'<span class="sample">{shown}{order}</span></h2>'
            + (f'<div class="grid">{"".join(cards)}</div>' if cards else "<p>none</p>")
        )
    return "<nav>" + "".join(nav) + "</nav>", "".join(sections), counts


def _page(name: str, metrics: dict[str, Any], th: Thresholds, nav: str, sections: str) -> str:
    esc = html.escape
    a = metrics["actions"]
    rows = "".join(
        f'<tr><th class="{k}">{k}</th><td>{a[k]["count"]}</td><td>{a[k]["spam"]}</td><td>{a[k]["not_spam"]}</td>'
        f"<td>{_fmt(a[k]['precision'])}</td><td>{_fmt(a[k]['share_of_spam'])}</td>"
        f"<td>{_fmt(a[k]['share_of_items'])}</td></tr>"
        for k in ("keep", "review", "demote")
    )
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in metrics["notes"] + metrics["warnings"])
    rule = GALLERY_RULE.format(review=f"{th.review:.3f}", demote=f"{th.demote:.3f}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>hf-spamguard evaluation</title>"
        f"<style>{_CSS}</style></head><body><h1>Evaluation of {esc(name)}</h1>"
        f"<p>{metrics['n']} labelled listings ({metrics['n_spam']} spam) · ROC-AUC {_fmt(metrics['roc_auc'])} · "
        f"PR-AUC {_fmt(metrics['pr_auc'])} · macro-F1 at demote {_fmt(metrics['macro_f1'])} · ECE "
        f"{_fmt(metrics['ece'])} · thresholds review {th.review:.3f} / demote {th.demote:.3f} "
        f"({esc(metrics['thresholds_source'])})</p>"
        f'<p class="rule"><b>How to read this page.</b> {esc(rule)}</p>'
        "<table><tr><th>decision</th><th>listings</th><th>spam</th><th>legitimate</th><th>precision</th>"
        f"<th>share of spam</th><th>share of listings</th></tr>{rows}</table>{notes}"
        f'<p><img src="{SWEEP_FILE}" alt="threshold sweep"> <img src="{RELIABILITY_FILE}" '
        f'alt="reliability diagram"></p>{nav}{sections}</body></html>'
    )


# ------------------------------------------------------------------------------------- report folder
def _check_report_folder(out: Path) -> None:
    if out.is_file() or (out.exists() and not out.is_dir()):
        raise FileExistsError(f"--out {out}: is a file; --out takes the report folder to write")
    if (
        out.is_dir()
        and any(out.iterdir())
        and not ((out / METRICS_FILE).exists() or (out / GALLERY_FILE).exists())
    ):
        raise FileExistsError(
            f"--out {out}: a folder that is not an earlier report (no {METRICS_FILE} / {GALLERY_FILE}); the "
            "report replaces its folder as a whole, so give a new or empty one"
        )
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"--out {out}: {parent} is a file, not a folder")
            break


def _remove_leftovers(out: Path) -> None:
    """Remove the temporary / old folders a killed run left beside ``out`` (called holding the lock)."""
    if not out.parent.is_dir():
        return
    for stale in out.parent.glob(f".{out.name}.*"):
        if stale.is_dir() and stale.name.endswith((".tmp", ".old")):
            shutil.rmtree(stale, ignore_errors=True)


def _swap_in(tmp: Path, out: Path) -> None:
    """Put the finished folder ``tmp`` at ``out``; the earlier report is removed only after that."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
        os.replace(out, old / "report")
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:  # put the earlier report back
            os.replace(old / "report", out)
            old.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_report(
    predictions_jsonl: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    thresholds: Thresholds | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    dataset: Any = None,
    split: str | None = "test",
    per_outcome: int = 24,
    excerpt_chars: int = 300,
) -> dict[str, Any]:
    """Evaluate a predictions file and write the report folder ``out_dir``; returns the metrics dict.

    ``thresholds``: a :class:`Thresholds`, dict, or folder/``policy.json``; by default those the
    prediction run applied (its ``<predictions>.policy.json``), then see the module docstring.
    ``dataset`` (a source for :func:`hf_spamguard.data.load_listings`, a ``Dataset`` or a
    ``DatasetDict``) adds description excerpts and thumbnails; ``split`` is searched first, then the
    other splits, and listings found nowhere are named in a :class:`ReportWarning` (also in
    ``metrics["warnings"]``). ``per_outcome`` (≥ 1) cards at most per gallery section, ``excerpt_chars``
    (≥ 1) characters of description per card. Errors (``ValueError``, ``OSError`` naming the file) come
    before anything is written; see the module docstring for the all-or-nothing rule.
    """
    from hf_spamguard.jobs import job_lock

    per_outcome = check_count("per_outcome", per_outcome)
    excerpt_chars = check_count("excerpt_chars", excerpt_chars)
    predictions = Path(predictions_jsonl)
    out = Path(out_dir)
    _check_report_folder(out)
    rows = read_predictions(predictions)
    labelled = [r for r in rows if "label" in r]
    if not labelled:
        raise ValueError(f"{predictions}: no row has a 'label'; evaluation needs labelled predictions")
    y = np.asarray([int(r["label"]) for r in labelled], dtype=np.int8)
    conf = np.asarray([float(r["confidence"]) for r in labelled], dtype=np.float64)
    th, source, notes, sidecar = _resolve_thresholds(thresholds, predictions, labelled, y, conf)
    lookup, found_notes, warns = _dataset_lookup(dataset, split, [str(r["id"]) for r in labelled])
    notes += found_notes
    decisions = decide(conf, th)
    recorded = [(r.get("decision"), d) for r, d in zip(labelled, decisions, strict=True) if r.get("decision")]
    if differ := sum(rec != now for rec, now in recorded):
        notes.append(
            f"{differ} listings carry a recorded decision other than the one these thresholds give; the "
            "report applies the thresholds shown"
        )
    metrics = evaluate_policy(y, conf, th)
    if th.review == th.demote:
        # said once: the selection's own note (which says why) may already have said it
        if not any("the review band is empty" in n for n in notes):
            notes.append(
                f"the review band is empty (review = demote = {th.demote:.3f}): nothing goes to human review"
            )
    elif metrics["actions"]["review"]["count"] == 0:
        notes.append(f"no listing fell in the review band [{th.review:.3f}, {th.demote:.3f})")
    metrics["thresholds_source"] = source
    metrics["model"] = sidecar.get("model") if sidecar else None
    metrics["notes"] = notes
    metrics["warnings"] = warns
    metrics["n_unlabelled"] = len(rows) - len(labelled)
    metrics["reliability"] = reliability_curve(y, conf)
    for message in warns:
        warnings.warn(message, ReportWarning, stacklevel=2)

    out.parent.mkdir(parents=True, exist_ok=True)
    with job_lock(out):
        _remove_leftovers(out)
        with io_errors("cannot write the report to", out):
            tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
            try:
                os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would make the report private
                _plot_sweep(y, conf, th, tmp / SWEEP_FILE)
                _plot_reliability(y, conf, tmp / RELIABILITY_FILE)
                nav, sections, counts = _sections_html(
                    labelled, decisions, lookup, tmp, per_outcome, excerpt_chars
                )
                metrics["gallery"] = counts
                atomic_write_json(tmp / METRICS_FILE, metrics)
                atomic_write_text(tmp / GALLERY_FILE, _page(predictions.name, metrics, th, nav, sections))
                _swap_in(tmp, out)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    return metrics


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def format_summary(metrics: Mapping[str, Any], out_dir: str | os.PathLike[str] | None = None) -> str:
    """The short plain-text summary ``spamguard evaluate`` prints: thresholds, the action table, the
    headline metrics and the notes that matter, in rounded numbers (the full record is in metrics.json).
    Lines never depend on the terminal width."""
    th = metrics["thresholds"]
    lines = [
        f"{metrics['n']} labelled listings ({metrics['n_spam']} spam)"
        + (f", {metrics['n_unlabelled']} unlabelled skipped" if metrics.get("n_unlabelled") else ""),
        f"thresholds: review {th['review']:.3f}, demote {th['demote']:.3f} ({metrics['thresholds_source']}"
        + (f": {metrics['model']}" if metrics.get("model") else "")
        + ")",
        "",
        f"{'decision':<9}{'listings':>9}{'spam':>7}{'legit':>7}{'precision':>11}{'of spam':>9}{'of all':>8}",
    ]
    for k in ("keep", "review", "demote"):
        a = metrics["actions"][k]
        lines.append(
            f"{k:<9}{a['count']:>9}{a['spam']:>7}{a['not_spam']:>7}{_fmt(a['precision']):>11}"
            f"{_fmt(a['share_of_spam']):>9}{_fmt(a['share_of_items']):>8}"
        )
    lines += [
        "",
        f"ROC-AUC {_fmt(metrics['roc_auc'])}  PR-AUC {_fmt(metrics['pr_auc'])}  macro-F1 {_fmt(metrics['macro_f1'])}"
        f"  ECE {_fmt(metrics['ece'])}  Brier {_fmt(metrics['brier'])}",
        f"demote precision {_fmt(metrics['demote_precision'])}, spam recall of review+demote "
        f"{_fmt(metrics['flagged_recall'])}, review load {_fmt(metrics['review_load'])}, "
        f"legitimate listings demoted {metrics['wrongly_demoted']}",
    ]
    lines += [f"note: {n}" for n in metrics.get("notes", [])]
    lines += [f"warning: {w}" for w in metrics.get("warnings", [])]
    if out_dir is not None:
        lines.append(
            f"report written to {out_dir} ({METRICS_FILE}, {GALLERY_FILE}, {SWEEP_FILE}, {RELIABILITY_FILE})"
        )
    return "\n".join(lines)


__all__ = ["GALLERY_RULE", "SECTIONS", "ReportWarning", "format_summary", "write_report"]
