"""Assembling Hub-ready folders (model, dataset, metric Space, baseline) and uploading them (layer 5).

Each ``assemble_*`` function writes a folder that loads with the *standard* loaders where hf-spamguard
is not installed: ``pipeline("listing-spam", model=folder, trust_remote_code=True)``,
``datasets.load_dataset(folder)``, ``evaluate.load(folder)``, ``skops.io.load``. :func:`publish` assembles
into ``dry_run`` (kept) or a temporary folder (uploaded with :func:`hf_spamguard.hub_io.upload_folder_to_hub`,
the one place that talks to the Hub, then removed).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hf_spamguard.atomic import atomic_write_text
from hf_spamguard.cards import (
    REPO_PLACEHOLDER,
    ModelCardFacts,
    baseline_card_facts,
    find_eval_results,
    model_card_facts,
    render_baseline_card,
    render_dataset_card,
    render_metric_card,
    render_model_card,
)
from hf_spamguard.files import (
    ADAPTER_CONFIG_FILE,
    BASELINE_MODEL_FILE,
    CARD_FILE,
    CONFIG_FILE,
    STUDENT_FILE,
    read_json,
)

KINDS = ("model", "dataset", "metric", "baseline")
REPO_TYPE = {"model": "model", "dataset": "dataset", "metric": "space", "baseline": "model"}
_UMASK = os.umask(0)
os.umask(_UMASK)
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

# Never uploaded from a baseline or student folder (paths relative to it): distill's diagnostics.
# errors/*.csv hold raw review text, ids and place names, and the report links to them; they serve
# error analysis on the training machine, and a Hub repo is public unless created --private.
BASELINE_DIAGNOSTICS = ("errors", "distill_report.*")

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
    notes: list[str] = field(
        default_factory=list, metadata={"help": "What was done besides copying (e.g. an adapter merged)."}
    )


# --------------------------------------------------------------------------------------------- helpers
def list_files(folder: str | Path) -> list[str]:
    """Relative POSIX paths of every file under ``folder``, sorted."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _excluded(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDE_PATTERNS)


def _copy_tree(src: Path, dst: Path, skipped: list[str], exclude_paths: tuple[str, ...] = ()) -> None:
    """Copy ``src`` into ``dst`` without :data:`EXCLUDE_PATTERNS` (matched on names at any depth) nor
    ``exclude_paths`` (patterns matched on paths relative to ``src``); what is left out goes to ``skipped``."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = Path(directory).relative_to(src)
        out = {
            n
            for n in names
            if _excluded(n) or any(fnmatch.fnmatch((rel / n).as_posix(), p) for p in exclude_paths)
        }
        skipped.extend((rel / n).as_posix() for n in sorted(out))
        return out

    shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)


def _check_not_nested(source: Path, out_dir: str | Path) -> None:
    # The output folder is replaced as a whole: it must never be, contain or sit inside the source.
    src, out = Path(source).resolve(), Path(out_dir).resolve()
    if src == out or src in out.parents or out in src.parents:
        raise ValueError(f"the output folder {out_dir} must not contain or be inside the source {source}")


def _follow_umask(folder: Path) -> None:
    """Give everything under ``folder`` the permissions a plain ``mkdir`` / ``open`` would: copies keep
    their source's mode (a 0600 ``policy.json`` stays 0600) and temporary folders are 0700, but what is
    published should read like every other file the user writes (0644 / 0755 under umask 022)."""
    dir_mode, file_mode = 0o777 & ~_UMASK, 0o666 & ~_UMASK
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            os.chmod(path, dir_mode)
        else:
            executable = path.stat().st_mode & 0o111
            os.chmod(path, file_mode | (executable & dir_mode))


def _build_into(out_dir: str | Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp)`` in a sibling temporary folder, then swap it into ``out_dir`` as a whole
    (:func:`hf_spamguard.data.hub_layout.atomic_folder`): an interrupted assembly never leaves a
    half-written folder that looks complete. Permissions follow the umask (:func:`_follow_umask`)."""
    from hf_spamguard.data.hub_layout import atomic_folder

    with atomic_folder(out_dir) as tmp:
        build(tmp)
        _follow_umask(tmp)
    return Path(out_dir)


def _set_repo_ref(folder: Path, repo_id: str | None) -> None:
    # Cards rendered before the repo id was known carry a placeholder in their usage snippets.
    card = folder / CARD_FILE
    if repo_id and card.is_file():
        text = card.read_text(encoding="utf-8")
        if REPO_PLACEHOLDER in text:
            atomic_write_text(card, text.replace(REPO_PLACEHOLDER, repo_id))


# --------------------------------------------------------------------------------------------- model
def _card_library(card: Path) -> str | None:
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(card, ignore_metadata_errors=True).data.library_name
    except Exception:  # noqa: BLE001 - an unreadable card is treated as a custom one and kept
        return None


def _merge_adapter_into(model_dir: Path, tmp: Path, skipped: list[str]) -> str:
    """Merge the peft adapter of ``model_dir`` into its base model, written to ``tmp``; returns the base.

    An adapter-only folder cannot carry the pipeline code (with a ``config.json`` next to
    ``adapter_config.json`` transformers looks for the base weights inside the folder), so the Hub folder
    gets merged weights. The adapter files themselves are kept under ``adapter/``, the layout training
    writes for merged runs.
    """
    from hf_spamguard.modeling import merge_adapter

    cfg = read_json(model_dir / ADAPTER_CONFIG_FILE, missing={})
    base = str(cfg.get("base_model_name_or_path") or "")
    try:
        # Weights + processor + calibration.json / policy.json / prompt_config.json.
        merge_adapter(model_dir, tmp)
    except OSError as exc:  # base model missing locally and not downloadable (offline, typo...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{model_dir / ADAPTER_CONFIG_FILE}, field 'base_model_name_or_path': cannot load the base "
            f"model {base!r} to merge the adapter into ({first})"
        ) from exc
    for item in sorted(model_dir.iterdir()):
        if _excluded(item.name):
            skipped.append(item.name)
            continue
        if item.name.startswith("adapter_"):
            dest = tmp / "adapter" / item.name
        elif (tmp / item.name).exists():
            continue  # merge_adapter wrote its own (processor files, calibration, policy)
        else:
            dest = tmp / item.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if item.is_dir():
            _copy_tree(item, dest, skipped)
        else:
            shutil.copy2(item, dest)
    if (tmp / "adapter").is_dir():
        # the Hub copy of the adapter names its base portably (Hub id, else the folder name), never a
        # path of this machine
        from hf_spamguard.modeling import portable_base_name, set_adapter_base

        set_adapter_base(tmp / "adapter", portable_base_name(base)[0])
    return base


def assemble_model_folder(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    repo_id: str | None = None,
    skipped: list[str] | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Hub folder for a fine-tuned ``listing-spam`` model: merged safetensors weights, processor,
    ``calibration.json``/``policy.json``, the pipeline code with the ``custom_pipelines`` entry in
    ``config.json``, and the model card (rendered now if the folder has none).

    An adapter-only folder (``--merge false`` training) is merged into its base model first (the adapter
    is kept in ``adapter/``), so that the published repo loads with ``pipeline("listing-spam",
    model=repo, trust_remote_code=True)``; its card is then re-rendered for merged weights. What was
    done is appended to ``notes``."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: model folder not found")
    is_adapter = (model_dir / ADAPTER_CONFIG_FILE).is_file()
    if not is_adapter and not (model_dir / CONFIG_FILE).is_file():
        raise ValueError(f"{model_dir}: not a model folder (no config.json or adapter_config.json)")
    if not any(model_dir.glob("*.safetensors")):
        raise ValueError(f"{model_dir}: no *.safetensors weights (pickled weights are not published)")
    skipped = [] if skipped is None else skipped  # collects the files left out, for the caller
    notes = [] if notes is None else notes

    _check_not_nested(model_dir, out_dir)

    def build(tmp: Path) -> None:
        from hf_spamguard.pipeline import save_pipeline_files
        from hf_spamguard.prompts import SYSTEM_PROMPT

        extra_notes = None
        if is_adapter:
            base = _merge_adapter_into(model_dir, tmp, skipped)
            notes.append(
                f"merged the LoRA adapter into its base model {base} (the adapter is kept in adapter/)"
            )
            extra_notes = (
                f"The LoRA adapter was merged into the base model (`{Path(base).name}`) when this repo was "
                "published; the adapter files are kept in `adapter/`."
            )
        else:
            _copy_tree(model_dir, tmp, skipped)
        save_pipeline_files(tmp)
        card = tmp / CARD_FILE
        # A card written for the adapter (library peft) no longer describes the merged weights.
        if not card.is_file() or (is_adapter and _card_library(card) == "peft"):
            facts = model_card_facts(
                model_dir, adapter=False if is_adapter else None, system_prompt=SYSTEM_PROMPT
            )
            render_model_card(
                tmp,
                ModelCardFacts(
                    **facts,
                    repo_id=repo_id,
                    model_name=repo_id.split("/")[-1] if repo_id else model_dir.resolve().name,
                    extra_notes=extra_notes,
                ),
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
            save_dataset(load_listings(source), tmp, lock=False)  # tmp is this run's own folder
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
        from hf_spamguard.policy import DEFAULT_TARGETS

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
        render_metric_card(tmp, repo_id=repo_id, title=module_name, targets=DEFAULT_TARGETS)

    return _build_into(out_dir, build)


# --------------------------------------------------------------------------------------------- baseline
def assemble_baseline_folder(
    baseline_dir: str | Path,
    out_dir: str | Path,
    *,
    repo_id: str | None = None,
    skipped: list[str] | None = None,
) -> Path:
    """Hub folder for a skops baseline (``model.skops`` + ``config.json`` + ``policy.json``) or a
    multi-label student (``model.skops`` + ``config.json`` + ``student.json`` + ``taxonomy.yaml``), with
    its card (rendered now if the folder has none).

    A student's training diagnostics (:data:`BASELINE_DIAGNOSTICS`: ``errors/``, ``distill_report.*``)
    are left out and listed in ``skipped``."""
    baseline_dir = Path(baseline_dir)
    if not (baseline_dir / BASELINE_MODEL_FILE).is_file():
        raise ValueError(f"{baseline_dir}: not a baseline folder (no {BASELINE_MODEL_FILE})")
    config = read_json(baseline_dir / CONFIG_FILE, missing={})
    if config.get("model_type") not in (None, "spamguard-baseline"):
        raise ValueError(
            f"{baseline_dir}/config.json: model_type is {config.get('model_type')!r}, "
            "expected 'spamguard-baseline'"
        )
    skipped = [] if skipped is None else skipped  # collects the files left out, for the caller

    _check_not_nested(baseline_dir, out_dir)

    def build(tmp: Path) -> None:
        from hf_spamguard.baseline import TRUSTED_TYPES

        _copy_tree(baseline_dir, tmp, skipped, exclude_paths=BASELINE_DIAGNOSTICS)
        if not (tmp / CARD_FILE).is_file():
            # A student's card takes its labels from student.json (they include the labels predicted as
            # constants, which have no head in config.json).
            labels = config.get("labels") or []
            is_student = (tmp / STUDENT_FILE).is_file()
            facts = baseline_card_facts(
                tmp,
                labels=labels if len(labels) > 1 and not is_student else None,
                eval_results=find_eval_results(tmp),
                repo_id=repo_id,
                model_name=repo_id.split("/")[-1] if repo_id else baseline_dir.resolve().name,
                trusted_types=tuple(TRUSTED_TYPES),
            )
            render_baseline_card(tmp, facts)
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
    notes: list[str] | None = None,
) -> Path:
    """Dispatch to the ``assemble_*`` function of ``kind`` (``source`` is unused for ``metric``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "metric":
        return assemble_metric_folder(out_dir, repo_id=repo_id)
    if source is None:
        raise ValueError(f"publishing a {kind} needs a source folder")
    if kind == "model":
        return assemble_model_folder(source, out_dir, repo_id=repo_id, skipped=skipped, notes=notes)
    builder = {"dataset": assemble_dataset_folder, "baseline": assemble_baseline_folder}[kind]
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
    default ``listing_spam_policy``) and nothing is uploaded; ``repo_id`` is then optional (used in the card's snippets).

    An upload first asks the Hub once (:func:`hf_spamguard.hub_io.check_hub`, a few seconds, no retries),
    before assembling anything: an unreachable Hub raises :class:`~hf_spamguard.hub_io.HubUnreachableError`
    (one line, "... nothing was uploaded") at once instead of after minutes of assembly and retries."""
    from hf_spamguard.hub_io import HubUnreachableError, check_hub, upload_folder_to_hub

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if dry_run is None and not repo_id:
        raise ValueError("--repo-id is required unless --dry-run is given")
    if dry_run is None:
        # Before assembling (merging an adapter takes minutes): one short request, no retries.
        try:
            check_hub(repo_id, repo_type=REPO_TYPE[kind], token=token)
        except HubUnreachableError as exc:
            raise HubUnreachableError(f"{exc}; nothing was uploaded") from exc
    skipped: list[str] = []
    notes: list[str] = []
    if dry_run is not None:
        folder = assemble(
            kind,
            source,
            Path(dry_run) / dry_run_folder_name(kind, repo_id),
            repo_id=repo_id,
            skipped=skipped,
            notes=notes,
        )
        return PublishResult(kind, folder, list_files(folder), repo_id, None, skipped, notes)
    assert repo_id is not None
    with tempfile.TemporaryDirectory(prefix="spamguard-publish-") as tmp:
        name = repo_id.split("/")[-1] if kind == "metric" else kind
        folder = assemble(kind, source, Path(tmp) / name, repo_id=repo_id, skipped=skipped, notes=notes)
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
        return PublishResult(kind, folder, files, repo_id, url, skipped, notes)
