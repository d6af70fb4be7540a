"""Assembling Hub-ready folders (model, dataset, metric Space, baseline) and uploading them.

Each ``assemble_*`` function writes a folder that loads with the *standard* loaders where hf-spamguard
is not installed: ``pipeline("listing-spam", model=folder, trust_remote_code=True)``,
``datasets.load_dataset(folder)``, ``evaluate.load(folder)``, ``skops.io.load``. :func:`publish` assembles
into ``dry_run`` (kept) or a temporary folder (uploaded with :func:`hf_spamguard.hub_io.upload_folder_to_hub`,
the one place that talks to the Hub, then removed).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_spamguard.cards import (
    CARD_FILE,
    REPO_PLACEHOLDER,
    atomic_write_text,
    render_baseline_card,
    render_dataset_card,
    render_metric_card,
    render_model_card,
)

KINDS = ("model", "dataset", "metric", "baseline")
REPO_TYPE = {"model": "model", "dataset": "dataset", "metric": "space", "baseline": "model"}
METRIC_NAME = "listing_spam_policy"

# Never uploaded from a model folder: training state (pickles: training_args.bin, optimizer.pt,
# rng_state.pth...), intermediate checkpoints and logs. Weights must be safetensors.
EXCLUDE_PATTERNS = (
    "checkpoint-*",
    "runs",
    "logs",
    "__pycache__",
    ".git",
    ".cache",
    "*.pt",
    "*.pth",
    "*.bin",
    "*.pkl",
    "*.pickle",
    "*.ckpt",
    ".*.tmp",
)

# The Space runs the metric's standard gradio widget; the module itself is pure NumPy.
SPACE_APP = """import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("{module_file}")
launch_gradio_widget(module)
"""
SPACE_REQUIREMENTS = "evaluate>=0.4.3\nnumpy\ngradio\n"


@dataclass
class PublishResult:
    """What :func:`publish` did."""

    kind: str = field(metadata={"help": "model, dataset, metric or baseline."})
    folder: Path = field(metadata={"help": "The assembled folder (removed after upload unless dry-run)."})
    files: list[str] = field(default_factory=list, metadata={"help": "Relative paths of the files in it."})
    repo_id: str | None = field(default=None, metadata={"help": "Target repo (None for a dry run)."})
    url: str | None = field(default=None, metadata={"help": "Commit URL returned by the Hub."})
    skipped: list[str] = field(default_factory=list, metadata={"help": "Files left out (training state...)."})


# --------------------------------------------------------------------------------------------- helpers
def list_files(folder: str | Path) -> list[str]:
    """Relative POSIX paths of every file under ``folder``, sorted."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _excluded(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDE_PATTERNS)


def _copy_tree(src: Path, dst: Path, skipped: list[str]) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        out = {n for n in names if _excluded(n)}
        rel = Path(directory).relative_to(src)
        skipped.extend((rel / n).as_posix() for n in sorted(out))
        return out

    shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)


def _check_not_nested(source: Path, out_dir: str | Path) -> None:
    # The output folder is replaced as a whole: it must never be, contain or sit inside the source.
    src, out = Path(source).resolve(), Path(out_dir).resolve()
    if src == out or src in out.parents or out in src.parents:
        raise ValueError(f"the output folder {out_dir} must not contain or be inside the source {source}")


def _build_into(out_dir: str | Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp)`` in a sibling temporary folder, then swap it into ``out_dir``: an interrupted
    assembly never leaves a half-written folder that looks complete."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        build(tmp)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old.{os.getpid()}")
            os.replace(out_dir, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _set_repo_ref(folder: Path, repo_id: str | None) -> None:
    # Cards rendered before the repo id was known carry a placeholder in their usage snippets.
    card = folder / CARD_FILE
    if repo_id and card.is_file():
        text = card.read_text(encoding="utf-8")
        if REPO_PLACEHOLDER in text:
            atomic_write_text(card, text.replace(REPO_PLACEHOLDER, repo_id))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from exc


def _find_eval_results(folder: Path) -> dict[str, Any] | None:
    for name in ("metrics.json", "eval_results.json", "policy_metrics.json"):
        data = _read_json(folder / name)
        if data:
            return data.get("metrics", data) if isinstance(data.get("metrics"), dict) else data
    return None


# --------------------------------------------------------------------------------------------- model
# Training settings worth a row in a card rendered from a finished folder (training_args.json).
_CARD_TRAINING_ARGS = (
    "learning_rate", "max_steps", "num_train_epochs", "per_device_train_batch_size",
    "gradient_accumulation_steps", "lr_scheduler_type", "optim", "bf16", "gradient_checkpointing", "seed",
)  # fmt: skip


def _model_card_facts(folder: Path, is_adapter: bool) -> dict[str, Any]:
    """Card facts of a model folder that has no card: what training wrote next to the weights
    (``training_summary.json``: base model, validation metrics, settings; ``training_args.json``)."""
    summary = _read_json(folder / "training_summary.json")
    adapter_cfg = _read_json(folder / "adapter_config.json")
    config = _read_json(folder / "config.json")
    base = (
        summary.get("base_model")
        or adapter_cfg.get("base_model_name_or_path")
        or config.get("_name_or_path")
        or "not recorded"
    )
    project = summary.get("project_args") or {}
    training_args = _read_json(folder / "training_args.json")
    training_config = {k: summary[k] for k in ("backend", "quantized", "device", "train_rows", "global_step",
                                                "train_loss") if k in summary}  # fmt: skip
    training_config.update(
        {k: project[k] for k in ("split_vote", "max_pixels", "reason_source") if k in project}
    )
    training_config.update({k: training_args[k] for k in _CARD_TRAINING_ARGS if k in training_args})
    eval_results = summary.get("eval_metrics") or _find_eval_results(folder)
    return {
        "base_model": str(base),
        "adapter": is_adapter,
        "training_config": training_config or None,
        "dataset": project.get("dataset") or None,
        "eval_results": eval_results,
        "eval_split": str(project.get("eval_split") or "validation")
        if summary.get("eval_metrics")
        else "test",
    }


def assemble_model_folder(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    repo_id: str | None = None,
    skipped: list[str] | None = None,
) -> Path:
    """Hub folder for a fine-tuned ``listing-spam`` model: weights (safetensors; adapter or merged),
    processor, ``calibration.json``/``policy.json``, the pipeline code with the ``custom_pipelines``
    entry in ``config.json``, and the model card (rendered now if the folder has none)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: model folder not found")
    is_adapter = (model_dir / "adapter_config.json").is_file()
    if not is_adapter and not (model_dir / "config.json").is_file():
        raise ValueError(f"{model_dir}: not a model folder (no config.json or adapter_config.json)")
    if not any(model_dir.glob("*.safetensors")):
        raise ValueError(f"{model_dir}: no *.safetensors weights (pickled weights are not published)")
    skipped = [] if skipped is None else skipped  # collects the files left out, for the caller

    _check_not_nested(model_dir, out_dir)

    def build(tmp: Path) -> None:
        from hf_spamguard.pipeline import save_pipeline_files

        _copy_tree(model_dir, tmp, skipped)
        save_pipeline_files(tmp)
        if not (tmp / CARD_FILE).is_file():
            render_model_card(
                tmp,
                **_model_card_facts(tmp, is_adapter),
                repo_id=repo_id,
                model_name=repo_id.split("/")[-1] if repo_id else model_dir.resolve().name,
            )
        _set_repo_ref(tmp, repo_id)

    return _build_into(out_dir, build)


# --------------------------------------------------------------------------------------------- dataset
def assemble_dataset_folder(
    source: str | Path, out_dir: str | Path, *, repo_id: str | None = None, skipped: list[str] | None = None
) -> Path:
    """Hub folder for a listings dataset: ``data/<split>-*.parquet`` + dataset card.

    ``source``: a folder written by ``data.save_dataset`` (copied) or a TSV file (built with
    ``data.load_listings`` and saved)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: dataset not found")
    skipped = [] if skipped is None else skipped  # collects the files left out, for the caller

    _check_not_nested(source, out_dir)

    def build(tmp: Path) -> None:
        from hf_spamguard.data import load_listings, save_dataset

        if source.is_dir():
            if not any(source.glob("data/*.parquet")) and not any(source.glob("**/*.parquet")):
                raise ValueError(f"{source}: no Parquet files (expected data/<split>-*.parquet)")
            _copy_tree(source, tmp, skipped)
        else:
            save_dataset(load_listings(source), tmp)
        render_dataset_card(tmp, repo_id=repo_id)

    return _build_into(out_dir, build)


# --------------------------------------------------------------------------------------------- metric
def assemble_metric_folder(out_dir: str | Path, *, repo_id: str | None = None) -> Path:
    """Hub Space folder for the ``listing_spam_policy`` evaluate module (self-contained: loads with
    ``evaluate.load(folder)`` where hf-spamguard is not installed) + Space card + gradio app.

    ``evaluate`` finds a module as ``<folder>/<folder name>.py`` locally and ``<repo name>.py`` on the
    Hub, so the script is named after the Space (``repo_id``'s name, default ``listing_spam_policy``) and
    a dry-run folder should be named the same way."""
    out_dir = Path(out_dir)
    module_name = (repo_id.split("/")[-1] if repo_id else out_dir.name) or METRIC_NAME
    if not module_name.isidentifier():
        raise ValueError(
            f"metric Space name {module_name!r} must be a Python identifier (evaluate imports "
            f"'{module_name}.py'); use e.g. 'org/{METRIC_NAME}'"
        )

    def build(tmp: Path) -> None:
        from hf_spamguard.metrics import export_space

        exported = Path(export_space(METRIC_NAME, tmp / "_export"))
        for item in exported.iterdir():
            shutil.move(str(item), tmp / item.name)
        shutil.rmtree(tmp / "_export", ignore_errors=True)
        if module_name != METRIC_NAME and (tmp / f"{METRIC_NAME}.py").is_file():
            os.replace(tmp / f"{METRIC_NAME}.py", tmp / f"{module_name}.py")
        if not (tmp / f"{module_name}.py").is_file():
            raise RuntimeError(f"export_space wrote no {module_name}.py in {exported}")
        # Load the script by file name: inside the Space the working directory is the repo root, and
        # a bare name would be looked up as a Hub metric instead.
        atomic_write_text(tmp / "app.py", SPACE_APP.format(module_file=f"{module_name}.py"))
        if not (tmp / "requirements.txt").is_file():
            atomic_write_text(tmp / "requirements.txt", SPACE_REQUIREMENTS)
        render_metric_card(tmp, repo_id=repo_id, title=module_name)

    return _build_into(out_dir, build)


# --------------------------------------------------------------------------------------------- baseline
def assemble_baseline_folder(
    baseline_dir: str | Path,
    out_dir: str | Path,
    *,
    repo_id: str | None = None,
    skipped: list[str] | None = None,
) -> Path:
    """Hub folder for a skops baseline or multi-label student: ``model.skops`` + ``config.json`` +
    ``policy.json`` + card (rendered now if the folder has none)."""
    baseline_dir = Path(baseline_dir)
    if not (baseline_dir / "model.skops").is_file():
        raise ValueError(f"{baseline_dir}: not a baseline folder (no model.skops)")
    config = _read_json(baseline_dir / "config.json")
    if config.get("model_type") not in (None, "spamguard-baseline"):
        raise ValueError(
            f"{baseline_dir}/config.json: model_type is {config.get('model_type')!r}, "
            "expected 'spamguard-baseline'"
        )
    skipped = [] if skipped is None else skipped  # collects the files left out, for the caller

    _check_not_nested(baseline_dir, out_dir)

    def build(tmp: Path) -> None:
        _copy_tree(baseline_dir, tmp, skipped)
        if not (tmp / CARD_FILE).is_file():
            labels = config.get("labels") or []
            render_baseline_card(
                tmp,
                labels=labels if len(labels) > 1 else None,
                eval_results=_find_eval_results(tmp),
                repo_id=repo_id,
                model_name=repo_id.split("/")[-1] if repo_id else baseline_dir.resolve().name,
            )
        _set_repo_ref(tmp, repo_id)

    return _build_into(out_dir, build)


# --------------------------------------------------------------------------------------------- publish
def assemble(
    kind: str,
    source: str | Path | None,
    out_dir: str | Path,
    *,
    repo_id: str | None = None,
    skipped: list[str] | None = None,
) -> Path:
    """Dispatch to the ``assemble_*`` function of ``kind`` (``source`` is unused for ``metric``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "metric":
        return assemble_metric_folder(out_dir, repo_id=repo_id)
    if source is None:
        raise ValueError(f"publishing a {kind} needs a source folder")
    builder = {
        "model": assemble_model_folder,
        "dataset": assemble_dataset_folder,
        "baseline": assemble_baseline_folder,
    }[kind]
    return builder(source, out_dir, repo_id=repo_id, skipped=skipped)


def dry_run_folder_name(kind: str, repo_id: str | None = None) -> str:
    """Name of ``kind``'s folder inside a ``--dry-run OUT`` folder. The metric's is its module name (the
    Space's name, default ``listing_spam_policy``): ``evaluate.load(folder)`` imports ``<folder name>.py``."""
    if kind == "metric":
        return repo_id.split("/")[-1] if repo_id else METRIC_NAME
    return kind


def publish(
    kind: str,
    source: str | Path | None,
    *,
    repo_id: str | None = None,
    private: bool = False,
    token: str | None = None,
    dry_run: str | Path | None = None,
    commit_message: str | None = None,
) -> PublishResult:
    """Assemble ``kind`` from ``source`` and upload it to ``repo_id`` (``create_repo`` + ``upload_folder``
    via :func:`hf_spamguard.hub_io.upload_folder_to_hub`; the metric goes to a gradio Space).

    With ``dry_run=OUT`` the folder is written to ``OUT/<kind>`` (``OUT/<Space name>`` for the metric,
    default ``listing_spam_policy``) and nothing is uploaded; ``repo_id`` is then optional (used in the card's snippets)."""
    from hf_spamguard.hub_io import upload_folder_to_hub

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if dry_run is None and not repo_id:
        raise ValueError("--repo-id is required unless --dry-run is given")
    skipped: list[str] = []
    if dry_run is not None:
        folder = assemble(
            kind, source, Path(dry_run) / dry_run_folder_name(kind, repo_id), repo_id=repo_id, skipped=skipped
        )
        return PublishResult(kind, folder, list_files(folder), repo_id, None, skipped)
    assert repo_id is not None
    with tempfile.TemporaryDirectory(prefix="spamguard-publish-") as tmp:
        name = repo_id.split("/")[-1] if kind == "metric" else kind
        folder = assemble(kind, source, Path(tmp) / name, repo_id=repo_id, skipped=skipped)
        files = list_files(folder)
        url = upload_folder_to_hub(
            folder,
            repo_id,
            repo_type=REPO_TYPE[kind],
            private=private,
            token=token,
            commit_message=commit_message or f"Upload {kind} with hf-spamguard",
            space_sdk="gradio" if kind == "metric" else None,
        )
        return PublishResult(kind, folder, files, repo_id, url, skipped)
