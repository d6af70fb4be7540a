"""``spamguard evaluate``: the evaluation report of a predictions file.

Writes ``metrics.json`` (policy evaluation from :mod:`hf_spamguard.policy`), ``threshold_sweep.png``,
``reliability.png`` and ``gallery.html`` (true/false positives/negatives with description excerpts,
thumbnails when the dataset is given and has images, confidence, reason and decision). Every string
from the data is HTML-escaped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hf_spamguard.atomic import atomic_path, atomic_write_json, atomic_write_text
from hf_spamguard.policy import (
    Thresholds,
    as_thresholds,
    evaluate_policy,
    reliability_curve,
    select_thresholds,
    threshold_sweep,
)

OUTCOMES = (
    ("false_positive", "False positives — legitimate listings flagged as spam"),
    ("false_negative", "False negatives — spam the model missed"),
    ("true_positive", "True positives — spam caught"),
    ("true_negative", "True negatives — legitimate listings kept"),
)


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
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5.2, 5.6), dpi=110, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    ax.bar(centres, rate, width=edges[1] - edges[0], alpha=0.35, edgecolor="black", label="spam rate per bin")
    ax.plot(mean_conf, rate, marker="o", label="mean confidence vs spam rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("observed spam rate")
    ax.set_title("Reliability diagram")
    ax.legend(fontsize=8, loc="upper left")
    axh.bar(centres, curve["count"], width=edges[1] - edges[0], color="tab:gray")
    axh.set_xlim(0, 1)
    axh.set_xlabel("spam confidence")
    axh.set_ylabel("items")
    fig.tight_layout()
    _save_fig(fig, path)
    plt.close(fig)


def _save_fig(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _dataset_lookup(dataset: Any, split: str | None) -> dict[str, dict[str, Any]]:
    """``{product_id: {"description", "image"}}`` from a dataset source (for excerpts and thumbnails)."""
    if dataset is None:
        return {}
    if hasattr(dataset, "column_names"):
        ds = dataset
    else:
        from hf_spamguard.data import load_listings

        ds = load_listings(dataset, split)
    cols = [c for c in ("product_id", "description", "image") if c in ds.column_names]
    out: dict[str, dict[str, Any]] = {}
    for row in ds.select_columns(cols):
        out[str(row.get("product_id"))] = row
    return out


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


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:28px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px;background:#fafafa}
.card img{max-width:160px;max-height:160px;float:right;margin-left:8px;border-radius:4px}
.meta{font-size:.85em;color:#555} .desc{font-size:.9em;white-space:pre-wrap;word-break:break-word}
.reason{font-style:italic} .keep{color:#2a7} .review{color:#c80} .demote{color:#c22}
table{border-collapse:collapse} td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}
"""


def _card_html(row: dict[str, Any], info: dict[str, Any], thumb: str | None, excerpt_chars: int) -> str:
    esc = html.escape
    desc = str(info.get("description") or row.get("description") or "")
    if len(desc) > excerpt_chars:
        desc = desc[: excerpt_chars - 1] + "…"
    decision = str(row.get("decision") or "")
    parts = ['<div class="card">']
    if thumb:
        parts.append(f'<img src="{esc(thumb)}" alt="listing photo">')
    parts.append(
        f'<div class="meta">id <b>{esc(str(row.get("id")))}</b> · label {esc(str(row.get("label", "?")))}'
        f" · confidence {float(row['confidence']):.3f}"
        + (f' · <span class="{esc(decision)}">{esc(decision)}</span>' if decision else "")
        + "</div>"
    )
    parts.append(f'<div class="reason">{esc(str(row.get("reason") or ""))}</div>')
    if desc:
        parts.append(f'<div class="desc">{esc(desc)}</div>')
    parts.append("</div>")
    return "".join(parts)


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
    """Evaluate a predictions file and write the report folder; returns the metrics dict.

    ``thresholds``: a :class:`Thresholds`, dict, or folder/``policy.json``; by default the thresholds
    that reproduce the rows' ``decision`` fields, else selected on these data (marked as optimistic).
    ``dataset`` (a source for :func:`hf_spamguard.data.load_listings`, or a ``Dataset``) adds
    description excerpts and thumbnails to the gallery.
    """
    from hf_spamguard.predict import read_predictions

    rows = read_predictions(predictions_jsonl)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labelled = [r for r in rows if "label" in r]
    if not labelled:
        raise ValueError(f"{predictions_jsonl}: no row has a 'label'; evaluation needs labelled predictions")
    y = np.asarray([int(r["label"]) for r in labelled], dtype=np.int8)
    conf = np.asarray([float(r["confidence"]) for r in labelled], dtype=np.float64)

    notes: list[str] = []
    th = as_thresholds(thresholds)
    source = "given"
    if th is None:
        th = _infer_thresholds(labelled)
        source = "from the decisions in the predictions file"
    if th is None:
        if 0 < y.sum() < y.size:
            selection = select_thresholds(y, conf)
            th = selection.thresholds
            notes = ["thresholds selected on the evaluated data itself (optimistic)"] + selection.notes
            source = "selected on these data"
        else:
            th = Thresholds(0.5, 0.5)
            source = "default 0.5"
    metrics = evaluate_policy(y, conf, th)
    metrics["thresholds_source"] = source
    metrics["notes"] = notes
    metrics["n_unlabelled"] = len(rows) - len(labelled)
    metrics["reliability"] = reliability_curve(y, conf)
    atomic_write_json(out / "metrics.json", metrics)
    _plot_sweep(y, conf, th, out / "threshold_sweep.png")
    _plot_reliability(y, conf, out / "reliability.png")

    # gallery
    lookup = _dataset_lookup(dataset, split)
    thumbs = out / "thumbnails"
    groups: dict[str, list[dict[str, Any]]] = {k: [] for k, _ in OUTCOMES}
    for r in labelled:
        pred = bool(r.get("is_spam", float(r["confidence"]) >= 0.5))
        key = ("true_" if pred == bool(r["label"]) else "false_") + ("positive" if pred else "negative")
        groups[key].append(r)
    sections = []
    for key, title in OUTCOMES:
        items = groups[key]
        # most confident mistakes / clearest successes first
        items.sort(
            key=lambda r: -float(r["confidence"]) if key.endswith("positive") else float(r["confidence"])
        )
        cards = []
        for r in items[:per_outcome]:
            info = lookup.get(str(r.get("id")), {})
            thumb_rel = None
            if info.get("image") is not None:
                thumbs.mkdir(exist_ok=True)
                name = (
                    "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(r.get("id")))[:80]
                    + ".jpg"
                )
                if _thumbnail(info["image"], thumbs / name):
                    thumb_rel = f"thumbnails/{name}"
            cards.append(_card_html(r, info, thumb_rel, excerpt_chars))
        sections.append(
            f'<h2 id="{key}">{html.escape(title)} ({len(items)})</h2>'
            + (f'<div class="grid">{"".join(cards)}</div>' if cards else "<p>none</p>")
        )
    a = metrics["actions"]
    summary_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{a[k]['count']}</td><td>{_fmt(a[k]['precision'])}</td>"
        f"<td>{_fmt(a[k]['share_of_spam'])}</td><td>{_fmt(a[k]['share_of_items'])}</td></tr>"
        for k in ("keep", "review", "demote")
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>hf-spamguard evaluation</title>"
        f"<style>{_CSS}</style></head><body><h1>Evaluation of {html.escape(Path(predictions_jsonl).name)}</h1>"
        f"<p>{len(labelled)} labelled listings · ROC-AUC {_fmt(metrics['roc_auc'])} · PR-AUC "
        f"{_fmt(metrics['pr_auc'])} · macro-F1 at demote {_fmt(metrics['macro_f1'])} · ECE "
        f"{_fmt(metrics['ece'])} · thresholds review {th.review:.3f} / demote {th.demote:.3f} "
        f"({html.escape(source)})</p>"
        "<table><tr><th>action</th><th>count</th><th>precision</th><th>share of spam</th>"
        f"<th>share of items</th></tr>{summary_rows}</table>"
        + "".join(f"<p>{html.escape(n)}</p>" for n in notes)
        + '<p><img src="threshold_sweep.png" alt="threshold sweep"> '
        '<img src="reliability.png" alt="reliability diagram"></p>' + "".join(sections) + "</body></html>"
    )
    atomic_write_text(out / "gallery.html", page)
    return metrics


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


__all__ = ["write_report"]
