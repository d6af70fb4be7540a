"""``spamguard predict``: score a dataset split with a baseline or VLM model folder → JSON Lines.

Each output line is ``{"id", "is_spam", "confidence", "reason", "decision"}`` (``decision`` when the
model folder has a ``policy.json``) plus ``"label"`` when the input has one, in input order.
``is_spam`` is ``confidence >= 0.5`` (the calibrated belief); ``decision`` is what the policy does with
the listing, and every report groups by it.

Next to the file, ``<out>.policy.json`` (:func:`policy_sidecar`) records the thresholds the run applied
(``null`` when the model has no policy), the model folder and the SHA-256 of the predictions it
describes, so ``spamguard evaluate`` shows the thresholds the model really used.

Failure behaviour: arguments and the output path are checked before any model is loaded; the run holds
a lock on ``<out>`` (a second run into the same file stops at once, naming the first one's pid); the
file is written to a temporary sibling and renamed, so a crash, a kill or a full disk never leaves a
half-written prediction file, and the temporary files a killed run left next to ``<out>`` are removed by
the next run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import numbers
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_spamguard.atomic import atomic_path, atomic_write_json
from hf_spamguard.files import ADAPTER_CONFIG_FILE, CONFIG_FILE, PREDICTIONS_POLICY_SUFFIX, read_json
from hf_spamguard.verdict import DECISIONS, validate_verdict


class PredictionsError(ValueError):
    """A predictions file or sidecar is not what ``spamguard predict`` writes; one line naming the file,
    the line and the field."""


@dataclass
class PredictionSummary:
    """What :func:`predict_to_jsonl` wrote."""

    out: Path = field(metadata={"help": "The JSON Lines file."})
    n: int = field(metadata={"help": "Rows written."})
    model_kind: str = field(metadata={"help": "'baseline' or 'vlm'."})
    decisions: dict[str, int] = field(default_factory=dict, metadata={"help": "Rows per decision."})
    thresholds: dict[str, float] | None = field(
        default=None, metadata={"help": "The review/demote thresholds applied (None: no policy)."}
    )
    policy_file: Path | None = field(default=None, metadata={"help": "The sidecar <out>.policy.json."})


# ------------------------------------------------------------------------------------ argument checks
def check_count(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an ``int`` ≥ ``minimum``; else ``ValueError`` naming the argument (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a ``bool``; else ``ValueError`` naming the argument."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def policy_sidecar(predictions: str | os.PathLike[str]) -> Path:
    """``<predictions>.policy.json``: the thresholds a prediction run applied (see the module doc)."""
    path = Path(predictions)
    return path.with_name(path.name + PREDICTIONS_POLICY_SUFFIX)


def check_output_file(out: str | os.PathLike[str], what: str = "--out") -> Path:
    """Refuse an output path that cannot become a file, before any work is done.

    ``FileExistsError`` / ``NotADirectoryError`` (one line) when ``out`` is a folder or its parent is a
    file; creates the parent folder.
    """
    out = Path(out)
    if out.is_dir():
        raise FileExistsError(
            f"{what} {out}: is a folder; give the file to write, e.g. {out / 'predictions.jsonl'}"
        )
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{what} {out}: {parent} is a file, not a folder")
            break
    with io_errors(f"cannot create the folder of {what}", out.parent):
        out.parent.mkdir(parents=True, exist_ok=True)
    return out


@contextmanager
def io_errors(action: str, path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise an operating-system error (an ``OSError`` with an errno) as one of the same class and errno
    whose message says what was being done and to which path (``"cannot write predictions to
    /x/p.jsonl: no space left on device"``); the package's own ``OSError`` messages pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None or getattr(exc, "_spamguard_described", False):
            raise  # the package's own message (it names the file already), or already described
        reason = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
        reason = reason[:1].lower() + reason[1:]
        where = f" ({exc.filename})" if exc.filename and os.fspath(exc.filename) != os.fspath(path) else ""
        hint = " (nothing was written; free some space and run again)" if exc.errno == errno.ENOSPC else ""
        message = f"{action} {path}: {reason}{where}{hint}".replace("\n", " ")
        new = type(exc)(message) if exc.errno is None else type(exc)(exc.errno, message)
        new._spamguard_described = True  # type: ignore[attr-defined]
        raise new from exc


# ------------------------------------------------------------------------------------------- scorers
#: Engines that score VLM folders: the ``listing-spam`` pipeline (transformers) or vLLM
#: (:mod:`hf_spamguard.vllm_engine`, in an environment of its own). Baseline folders have their own code.
ENGINES = ("transformers", "vllm")


@dataclass
class _Scorer:
    """A loaded model: ``score(rows) → verdicts``, the columns it reads, the rows per call, its policy."""

    score: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
    columns: list[str]
    chunk: int
    thresholds: dict[str, float] | None
    close: Callable[[], None] = lambda: None


def _label_of(row: dict[str, Any]) -> int | None:
    label = row.get("label")
    if label is None or isinstance(label, bool):
        return None if label is None else int(label)
    try:
        value = int(label)
    except (TypeError, ValueError):
        return None
    return value if value in (0, 1) else None  # -1 = unlabelled in `datasets` ClassLabel convention


def _rows(ds: Any, columns: list[str], batch_size: int) -> Iterator[dict[str, Any]]:
    present = [c for c in columns if c in ds.column_names]
    view = ds.select_columns(present)
    for batch in view.iter(batch_size=batch_size):
        keys = list(batch)
        for values in zip(*(batch[k] for k in keys), strict=True):
            yield dict(zip(keys, values, strict=True))


def _baseline_scorer(model_dir: Path, batch_size: int, reason: bool) -> _Scorer:
    from hf_spamguard.baseline import BaselineClassifier

    model = BaselineClassifier.from_pretrained(model_dir)
    if model.multilabel:
        raise ValueError(f"{model_dir}: a multi-label baseline cannot write listing-spam predictions")

    def score(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return model([r.get("description") or "" for r in rows], reason=reason)

    policy = model.policy.to_dict() if model.policy is not None else None
    # batch_size is the rows read per step; the baseline is fast and scores in larger chunks
    return _Scorer(score, ["product_id", "description", "label"], batch_size * 8, policy)


def _vlm_scorer(model_dir: Path, batch_size: int, reason: bool) -> _Scorer:
    from hf_spamguard.pipeline import load_pipeline

    pipe = load_pipeline(model_dir, batch_size=batch_size)

    def score(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        inputs = [{"text": r.get("description") or "", "image": r.get("image")} for r in rows]
        verdicts = pipe(inputs, batch_size=batch_size, reason=reason)
        return [verdicts] if isinstance(verdicts, dict) else list(verdicts)

    policy = pipe.default_policy.to_dict() if pipe.default_policy is not None else None
    # one model batch per call, so that the progress bar moves as rows are scored
    return _Scorer(score, ["product_id", "description", "image", "label"], batch_size, policy)


def _vllm_scorer(model_dir: Path, batch_size: int, reason: bool) -> _Scorer:
    from hf_spamguard.vllm_engine import VLLMListingScorer

    scorer = VLLMListingScorer(model_dir)

    def score(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return scorer(
            [{"text": r.get("description") or "", "image": r.get("image")} for r in rows], reason=reason
        )

    policy = scorer.policy.to_dict() if scorer.policy is not None else None
    # vLLM schedules its own batches: hand it many rows per call (the bar moves per call)
    return _Scorer(
        score, ["product_id", "description", "image", "label"], batch_size * 4, policy, scorer.close
    )


def check_engine(engine: Any, kind: str | None = None) -> str:
    """``engine`` if it is one of :data:`ENGINES` (and, for the vllm engine, vLLM is installed and the
    model is a VLM); else ``ValueError`` / ``ModuleNotFoundError``, one line."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "vllm":
        if kind == "baseline":
            raise ValueError(
                "--engine vllm scores VLM folders; a baseline folder is scored by its own code (drop --engine)"
            )
        from hf_spamguard.vllm_engine import check_vllm_installed

        check_vllm_installed()
    return engine


def model_kind(model_dir: str | os.PathLike[str]) -> str:
    """``"baseline"`` for a spamguard-baseline folder, ``"vlm"`` for anything with a config.json.

    ``model_dir`` may be a Hub repo id (``"org/name"``): it is downloaded once into the Hugging Face cache.
    """
    from hf_spamguard.baseline import is_baseline_folder
    from hf_spamguard.hub_io import local_folder

    path = local_folder(model_dir)
    if path.is_file():
        raise NotADirectoryError(f"{model_dir}: is a file; --model takes a model folder (or a Hub id)")
    if not path.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model folder")
    if is_baseline_folder(path):
        return "baseline"
    if (path / CONFIG_FILE).is_file() or (path / ADAPTER_CONFIG_FILE).is_file():
        return "vlm"
    raise ValueError(f"{model_dir}: not a model folder (no config.json / adapter_config.json)")


def _load_source(source: Any, split: str | None) -> Any:
    if hasattr(source, "column_names"):
        return source
    from hf_spamguard.data import load_listings

    with io_errors("cannot read the dataset", source):
        return load_listings(source, split)


def predict_to_jsonl(
    model_dir: str | os.PathLike[str],
    source: Any,
    *,
    split: str | None = "test",
    out: str | os.PathLike[str],
    batch_size: int = 256,
    reason: bool = True,
    progress: bool = True,
    engine: str = "transformers",
) -> PredictionSummary:
    """Score ``source`` (a built dataset folder, a TSV, a Hub id, or a ``datasets.Dataset``) with the model
    in ``model_dir`` (a folder or a Hub repo id) and write JSON Lines to ``out`` atomically, plus the
    sidecar :func:`policy_sidecar`.

    ``batch_size`` ≥ 1 (``ValueError`` naming it otherwise). Errors come before any scoring: ``out`` a
    folder, a missing model or dataset, another run writing ``out``
    (:class:`hf_spamguard.jobs.JobLockedError`). ``OSError`` messages (a full disk, no permission) name
    the file and what was being done. ``progress`` shows a bar counting rows as they are scored.
    ``engine``: ``"transformers"`` (the ``listing-spam`` pipeline) or ``"vllm"`` (:mod:`hf_spamguard.vllm_engine`,
    VLM folders only): the same prompts, label tokens, temperature, policy and verdicts.
    """
    from hf_spamguard.hub_io import local_folder
    from hf_spamguard.jobs import job_lock, remove_temp_files

    batch_size = check_count("batch_size", batch_size)
    reason = check_flag("reason", reason)
    progress = check_flag("progress", progress)
    out_path = check_output_file(out)
    sidecar = policy_sidecar(out_path)
    check_output_file(sidecar, "the policy sidecar")
    # Resolved once: both the kind check and the scorer then read the same (downloaded) snapshot.
    model_given = os.fspath(model_dir)
    model_dir = local_folder(model_dir)
    kind = model_kind(model_dir)
    check_engine(engine, kind)
    ds = _load_source(source, split)
    if "description" not in ds.column_names:
        raise ValueError(f"{source}: the dataset has no 'description' column")
    with job_lock(out_path):
        # Only now (holding the lock) is a temporary file next to `out` surely a dead run's leftover.
        remove_temp_files(out_path.parent, owned=lambda target: target in (out_path.name, sidecar.name))
        loaders = {"transformers": _vlm_scorer, "vllm": _vllm_scorer}
        loader = _baseline_scorer if kind == "baseline" else loaders[engine]
        scorer = loader(Path(model_dir), batch_size, reason)
        try:
            n, counts, digest = _write_predictions(scorer, ds, out_path, batch_size, progress)
        finally:
            scorer.close()
        payload = {
            "thresholds": scorer.thresholds,
            "model": model_given,
            "model_dir": str(Path(model_dir).resolve()),
            "model_kind": kind,
            "engine": engine if kind == "vlm" else None,
            "predictions": {"file": out_path.name, "rows": n, "sha256": digest.hexdigest()},
            "written_by": "spamguard predict",
        }
        with io_errors("cannot write the policy sidecar", sidecar):
            atomic_write_json(sidecar, payload)
    return PredictionSummary(
        out=out_path,
        n=n,
        model_kind=kind,
        decisions=counts,
        thresholds=scorer.thresholds,
        policy_file=sidecar,
    )


def _write_predictions(
    scorer: _Scorer, ds: Any, out_path: Path, batch_size: int, progress: bool
) -> tuple[int, dict[str, int], Any]:
    """Score ``ds`` with ``scorer`` into ``out_path`` (atomically): rows, decision counts, SHA-256."""
    from tqdm.auto import tqdm

    counts: dict[str, int] = {}
    digest = hashlib.sha256()
    n = 0
    with (
        tqdm(total=len(ds), desc="predict", unit="rows", leave=True, disable=not progress) as bar,
        io_errors("cannot write predictions to", out_path),
        atomic_path(out_path) as tmp,
        open(tmp, "wb") as fh,
    ):
        chunk: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal n
            verdicts = scorer.score(chunk)
            if len(verdicts) != len(chunk):
                raise RuntimeError(f"the model answered {len(verdicts)} verdicts for {len(chunk)} rows")
            for row, verdict in zip(chunk, verdicts, strict=True):
                validate_verdict(verdict)
                record: dict[str, Any] = {"id": row.get("product_id", str(n))}
                record.update(verdict)
                label = _label_of(row)
                if label is not None:
                    record["label"] = label
                line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
                fh.write(line)
                digest.update(line)
                n += 1
                if "decision" in verdict:
                    counts[verdict["decision"]] = counts.get(verdict["decision"], 0) + 1
            bar.update(len(chunk))
            chunk.clear()

        for row in _rows(ds, scorer.columns, batch_size):
            chunk.append(row)
            if len(chunk) >= scorer.chunk:
                flush()
        if chunk:
            flush()
    return n, counts, digest


# ------------------------------------------------------------------------------------------- reading
def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_row(row: dict[str, Any], where: str) -> None:
    """Raise :class:`PredictionsError` unless ``row`` is a prediction as ``spamguard predict`` writes it."""
    for key in ("id", "confidence"):
        if key not in row:
            raise PredictionsError(f"{where}, field '{key}': missing")
    rid = row["id"]
    if isinstance(rid, bool) or not isinstance(rid, str | int) or rid == "":
        raise PredictionsError(
            f"{where}, field 'id': expected a non-empty string or integer, got {_short(rid)}"
        )
    conf = row["confidence"]
    if (
        isinstance(conf, bool)
        or not isinstance(conf, int | float)
        or not (math.isfinite(conf) if isinstance(conf, float) else True)
        or not 0 <= conf <= 1
    ):
        raise PredictionsError(
            f"{where}, field 'confidence': expected a number in [0, 1], got {_short(conf)}"
        )
    if "label" in row and row["label"] is not None:
        label = row["label"]
        if isinstance(label, bool) or not isinstance(label, int | float) or label not in (0, 1):
            raise PredictionsError(f"{where}, field 'label': expected 0 or 1, got {_short(label)}")
    if "is_spam" in row and not isinstance(row["is_spam"], bool):
        raise PredictionsError(
            f"{where}, field 'is_spam': expected true or false, got {_short(row['is_spam'])}"
        )
    if "decision" in row:
        decision = row["decision"]
        if not isinstance(decision, str) or decision not in DECISIONS:
            raise PredictionsError(
                f"{where}, field 'decision': expected one of {', '.join(DECISIONS)}, got {_short(decision)}"
            )
    if "reason" in row and row["reason"] is not None and not isinstance(row["reason"], str):
        raise PredictionsError(f"{where}, field 'reason': expected a string, got {_short(row['reason'])}")


def _decode(raw: bytes, where: str, first: bool) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PredictionsError(
            f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line)"
        ) from None
    return text.removeprefix("\ufeff") if first else text


def read_predictions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and check a predictions file (JSON Lines, UTF-8); errors name the file, line and field.

    Each non-blank line is an object with ``id`` (a non-empty string or integer, unique in the file),
    ``confidence`` (a number in [0, 1]) and optionally ``label`` (0, 1 or null = unlabelled, which drops
    it), ``is_spam`` (a boolean), ``decision`` (keep / review / demote) and ``reason`` (a string).
    Raises :class:`PredictionsError` (a ``ValueError``, one line) for anything else,
    ``FileNotFoundError`` for a missing file and ``IsADirectoryError`` for a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"{path}: is a folder; --predictions takes the .jsonl file written by `spamguard predict`"
        )
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such predictions file")
    rows: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    with io_errors("cannot read the predictions file", path), path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            where = f"{path.name}, line {line_no}"
            text = _decode(raw, where, line_no == 1)
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise PredictionsError(f"{where}: invalid JSON ({exc.msg})") from None
            except (ValueError, RecursionError) as exc:  # digits over the int limit, absurd nesting
                raise PredictionsError(f"{where}: invalid JSON ({_short(str(exc), 80)})") from None
            if not isinstance(row, dict):
                raise PredictionsError(f"{where}: expected a JSON object, got {type(row).__name__}")
            _check_row(row, where)
            key = str(row["id"])
            if key in first_line:
                raise PredictionsError(
                    f"{where}, field 'id': duplicate id {_short(row['id'])} (first on line {first_line[key]})"
                )
            first_line[key] = line_no
            if row.get("label", 0) is None:
                del row["label"]
            elif "label" in row:
                row["label"] = int(row["label"])
            rows.append(row)
    if not rows:
        raise PredictionsError(f"{path}: no predictions")
    return rows


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (what the sidecar records of its predictions file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_prediction_policy(predictions: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar of ``predictions`` (:func:`policy_sidecar`), or None when there is none.

    Its ``thresholds`` are checked (``None``: the model had no policy); ``matches_file`` is added: True
    when the recorded SHA-256 is that of ``predictions`` now, False when the file was edited or the
    sidecar was left by another run (the caller decides whether to trust it then). A sidecar that is
    not valid JSON raises :class:`hf_spamguard.files.SidecarError`, bad thresholds
    :class:`PredictionsError`, both naming the file.
    """
    path = policy_sidecar(predictions)
    data = read_json(path)
    if data is None:
        return None
    th = data.get("thresholds")
    if th is not None:
        from hf_spamguard.policy import PolicyError, Thresholds

        try:
            data["thresholds"] = Thresholds.from_dict(th).to_dict()
        except PolicyError as exc:
            raise PredictionsError(f"{path}, field 'thresholds': {exc}") from None
    recorded = data.get("predictions") if isinstance(data.get("predictions"), dict) else {}
    data["matches_file"] = recorded.get("sha256") == file_sha256(predictions)
    return data


__all__ = [
    "ENGINES",
    "PredictionSummary",
    "PredictionsError",
    "check_count",
    "check_engine",
    "model_kind",
    "policy_sidecar",
    "predict_to_jsonl",
    "read_prediction_policy",
    "read_predictions",
]
