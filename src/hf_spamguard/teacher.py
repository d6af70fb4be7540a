"""Teacher labelling: a large chat model labels reviews against a taxonomy, in resumable shards.

Per-label probabilities come from the teacher's logits, never from parsed free text: the answer
``{"advertisement": <v>, "irrelevant": <v>, ...}`` is forced segment by segment on one KV cache; after
each ``"<label>": `` the next-token logits of ``true`` vs ``false`` give the label's probability, the
more likely value is appended and the cache continues to the next label. One prompt encoding serves all
labels (and the optional rationale, generated greedily after the labels).

Durability (``label_reviews``): the input is cut into fixed shards of ``shard_size`` rows, in input
order. A shard is written to a temporary file, fsynced and renamed (``os.replace``), so a shard file
either exists complete or not at all; the file's existence *is* the record that the shard is done.
``manifest.json`` (rewritten atomically after every shard) records the job's identity (teacher with a
fingerprint of its files or its Hub revision, dtype, taxonomy, prompt, input files, shard size...) and
progress; a resume whose identity differs is refused, so one label file never mixes two models. Killed
at any moment, even with SIGKILL, the same command resumes with the missing shards: no row lost,
repeated or half-written. Under ``accelerate launch --num_processes N`` (or ``torchrun``) process
``p`` labels shards ``k % N == p``; whichever process finishes last merges the shards, in shard order,
into ``labels.parquet``, so the result does not depend on ``N``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hf_spamguard.atomic import atomic_path, atomic_write_json
from hf_spamguard.data.reviews import (
    count_reviews,
    folder_fingerprint,
    input_fingerprint,
    iter_reviews,
    unlabellable_reason,
)
from hf_spamguard.prompts import (
    REVIEW_RATIONALE_PREFIX,
    PromptConfig,
    build_review_messages,
    review_answer_segments,
    review_system_prompt,
)
from hf_spamguard.taxonomy import Taxonomy, load_taxonomy
from hf_spamguard.verdict import clean_reason

__all__ = [
    "LABELS_FILE",
    "MANIFEST_FILE",
    "LabelingConfig",
    "LabelingResult",
    "TeacherLabeler",
    "label_reviews",
    "load_labels",
    "merge_shards",
    "read_manifest",
    "teacher_fingerprint",
]

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
LABELS_FILE = "labels.parquet"
SHARD_DIR = "shards"
FORMAT = "spamguard-teacher-labels/1"
STATUS_LABELLED = "labelled"
STATUS_UNLABELLABLE = "unlabellable"
#: Review columns copied from the input into the labels, so a student can be trained from them alone.
PASSTHROUGH_COLUMNS = ("text", "rating", "place_name", "category", "gmap_id")


@dataclass
class LabelingConfig:
    """One labelling job. Re-running with the same values resumes it."""

    teacher: str = field(metadata={"help": "Teacher model: a folder (merged or peft adapter) or a Hub id."})
    input: str = field(
        metadata={"help": "Reviews: Google Local JSON lines, CSV/TSV/Parquet, a folder, or a Hub id."}
    )
    out: str = field(
        metadata={"help": "Output folder: shards/, manifest.json and, when complete, labels.parquet."}
    )
    taxonomy: str = field(
        default="reviews", metadata={"help": "Taxonomy preset (reviews, listings) or YAML file."}
    )
    meta: str | None = field(default=None, metadata={"help": "Google Local place metadata file or folder."})
    shard_size: int = field(default=256, metadata={"help": "Rows per shard (the unit of checkpointing)."})
    batch_size: int = field(default=8, metadata={"help": "Reviews per forward pass."})
    rationale: bool = field(default=False, metadata={"help": "Also generate a short rationale per review."})
    max_rationale_tokens: int = field(default=32, metadata={"help": "Longest rationale in tokens."})
    max_text_chars: int = field(
        default=2000, metadata={"help": "Review text is cut to this many characters."}
    )
    limit: int | None = field(default=None, metadata={"help": "Label only the first N input rows."})
    device: str | None = field(
        default=None, metadata={"help": "Torch device (default: this process's GPU, else CPU)."}
    )
    dtype: str | None = field(
        default=None, metadata={"help": "Model dtype (default: bfloat16 on GPU, float32 on CPU)."}
    )

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.batch_size < 1:
            raise ValueError("shard_size and batch_size must be >= 1")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")


@dataclass
class LabelingResult:
    """What one process did, and the merged file when the job is complete."""

    out_dir: Path
    n_rows: int
    n_shards: int
    shards_done: int
    shards_labelled_now: int
    rows_labelled_now: int
    seconds: float
    labels_path: Path | None


# --------------------------------------------------------------------------------------------- the model


def _value_tokens(tokenizer: Any, segment: str) -> tuple[list[int], int, int, list[int], list[int]]:
    """Token ids of the forced ``segment`` and of the first token where ``true`` and ``false`` differ.

    Tokenising ``segment + "true"`` and ``segment + "false"`` jointly lets BPE merge the space into the
    value (`` true``), as the model would write it; the common token prefix is what is forced.
    """
    t = tokenizer(segment + "true", add_special_tokens=False)["input_ids"]
    f = tokenizer(segment + "false", add_special_tokens=False)["input_ids"]
    k = 0
    while k < min(len(t), len(f)) and t[k] == f[k]:
        k += 1
    if k >= len(t) or k >= len(f):
        raise ValueError(f"the tokenizer cannot tell 'true' from 'false' after {segment!r}")
    return t[:k], t[k], f[k], t[k + 1 :], f[k + 1 :]


class TeacherLabeler:
    """Per-label probabilities of a causal (vision-)language model for reviews of a taxonomy."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        taxonomy: Taxonomy | str,
        *,
        max_text_chars: int = 2000,
        rationale: bool = False,
        max_rationale_tokens: int = 32,
        prefix_cache: bool = True,
    ) -> None:
        self.model = model
        self.prefix_cache = prefix_cache
        self._prefix_text: str | None = None
        self._prefix_ids: list[int] = []
        self._prefix_state: Any = None
        self.tokenizer = tokenizer
        self.taxonomy = load_taxonomy(taxonomy)
        self.rationale = rationale
        self.max_rationale_tokens = max_rationale_tokens
        self.prompt_config = PromptConfig(max_text_chars=max_text_chars)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.steps = [
            _value_tokens(tokenizer, seg) for seg in review_answer_segments(self.taxonomy.label_names)
        ]
        self.rationale_ids = tokenizer(REVIEW_RATIONALE_PREFIX, add_special_tokens=False)["input_ids"]
        # Qwen-VL models (multimodal rotary positions) walk the cache through hf_spamguard.scoring;
        # plain decoders get explicit 1-D positions from the attention mask here.
        inner = getattr(model, "model", model)
        self._own_positions = hasattr(inner, "get_rope_index") or hasattr(model, "get_rope_index")
        self._banned: Any = None
        # transformers 5.x renamed the forward argument `past_key_values` to `cache`.
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        taxonomy: Taxonomy | str = "reviews",
        *,
        device: str | None = None,
        dtype: str | None = None,
        **kwargs: Any,
    ) -> TeacherLabeler:
        """Load a teacher (Qwen3-VL folders via :mod:`hf_spamguard.modeling`; other chat models via Auto classes)."""
        from transformers import AutoConfig

        from hf_spamguard.modeling import (
            choose_device_and_dtype,
            is_adapter_folder,
            load_model,
            load_processor,
        )

        path = str(path)
        _check_teacher_exists(path)
        model_type = (
            "" if is_adapter_folder(path) else getattr(AutoConfig.from_pretrained(path), "model_type", "")
        )
        if is_adapter_folder(path) or model_type.startswith("qwen3_vl"):
            processor = load_processor(path)
            tokenizer = processor.tokenizer
            model = load_model(path, device=device, dtype=dtype)
        else:
            from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

            dev, dt = choose_device_and_dtype(device, dtype)
            tokenizer = AutoTokenizer.from_pretrained(path)
            try:
                model = AutoModelForImageTextToText.from_pretrained(path, dtype=dt)
            except ValueError:  # a text-only chat model
                model = AutoModelForCausalLM.from_pretrained(path, dtype=dt)
            model = model.to(dev).eval()
        tokenizer.padding_side = "left"
        return cls(model, tokenizer, taxonomy, **kwargs)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def prompt(self, row: Any) -> str:
        """The rendered chat prompt (generation prompt included) for one review row."""
        messages = build_review_messages(
            row.get("text"),
            self.taxonomy,
            place_name=row.get("place_name"),
            category=row.get("category"),
            rating=row.get("rating"),
            config=self.prompt_config,
        )
        return self._render(messages, add_generation_prompt=True)

    def _render(self, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError("the teacher's tokenizer has no chat template")
        try:
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        except Exception:  # noqa: BLE001 - text-only templates expect plain-string content
            flat = [
                {"role": m["role"], "content": "".join(p.get("text", "") for p in m["content"])}
                for m in messages
            ]
            return self.tokenizer.apply_chat_template(
                flat, tokenize=False, add_generation_prompt=add_generation_prompt
            )

    def _split_shared_prefix(self, prompts: list[str]) -> tuple[list[int], list[list[int]]] | None:
        """The system turn is the same for every review: its tokens, and each prompt's remaining tokens.

        None when the template does not start every prompt with the system turn (e.g. templates that
        fold the system prompt into the user turn) or when tokenising the two parts separately would
        not give the tokens of the whole prompt; then every prompt is encoded whole.
        """
        if self._prefix_text is None:
            system = build_review_messages("", self.taxonomy, config=self.prompt_config)[:1]
            text = self._render(system, add_generation_prompt=False)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            sample = self.prompt(
                {"text": "Great pasta, friendly staff.", "place_name": "Luigi's", "rating": 5}
            )
            whole = self.tokenizer(sample, add_special_tokens=False)["input_ids"]
            rest = self.tokenizer(sample[len(text) :], add_special_tokens=False)["input_ids"]
            ok = bool(self.prefix_cache and text and sample.startswith(text) and ids + rest == whole)
            self._prefix_text, self._prefix_ids = (text, ids) if ok else ("", [])
        text = self._prefix_text
        if not text or not all(p.startswith(text) for p in prompts):
            return None
        rests = self.tokenizer([p[len(text) :] for p in prompts], add_special_tokens=False)["input_ids"]
        return self._prefix_ids, rests

    def _forward(self, ids: Any, mask: Any, cache: Any) -> tuple[Any, Any]:
        import torch

        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "use_cache": True}
        if cache is not None:
            kwargs[self._cache_arg] = cache
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
        kwargs["position_ids"] = pos[:, -ids.shape[1] :]
        with torch.inference_mode():
            out = self.model(**kwargs)
        new_cache = getattr(out, "cache", None)
        return out.logits[:, -1, :].float(), new_cache if new_cache is not None else out.past_key_values

    def _start(self, rows: list[list[int]]) -> tuple[Any, Any]:
        """Encode the prompts (+ first forced segment); returns (next-token logits, walk state)."""
        import torch

        ids, mask = self._left_pad(rows, torch.zeros((len(rows), 0), dtype=torch.long, device=self.device))
        if self._own_positions:
            # Qwen-VL (M-RoPE): the scoring module walks the cache with explicit positions, so ragged
            # continuations and batching never shift a row's positions.
            from hf_spamguard.scoring import prefill

            state = prefill(self.model, {"input_ids": ids, "attention_mask": mask})
            return state.last_logits, state
        logits, cache = self._forward(ids, mask, None)
        return logits, (cache, mask)

    def _start_from_prefix(self, prefix: list[int], n: int) -> Any:
        """The walk state after the shared ``prefix``, encoded once and repeated for a batch of ``n``."""
        import copy
        from dataclasses import replace

        if self._prefix_state is None:
            self._prefix_state = self._start([prefix])[1]
        state = self._prefix_state

        def repeat(cache: Any) -> Any:
            cache = copy.deepcopy(cache)  # the walk appends to the cache in place
            if hasattr(cache, "batch_repeat_interleave"):
                cache.batch_repeat_interleave(n)
            else:
                for layer in cache.layers:
                    layer.batch_repeat_interleave(n)
            return cache

        if self._own_positions:
            return replace(
                state,
                cache=repeat(state.cache),
                attention_mask=state.attention_mask.expand(n, -1).clone(),
                text_pos=state.text_pos.expand(n).clone(),
                rope_pos=state.rope_pos.expand(n).clone(),
                last_logits=state.last_logits.expand(n, -1).clone(),
            )
        cache, mask = state
        return repeat(cache), mask.expand(n, -1).clone()

    def _continue(self, state: Any, rows: list[list[int]]) -> tuple[Any, Any]:
        """Append ``rows[i]`` to row ``i`` on the same KV cache; returns (next-token logits, state)."""
        if self._own_positions:
            from hf_spamguard.scoring import extend

            state = extend(self.model, state, rows, pad_id=self.pad_id)
            return state.last_logits, state
        cache, mask = state
        ids, mask = self._left_pad(rows, mask)
        logits, cache = self._forward(ids, mask, cache)
        return logits, (cache, mask)

    def _left_pad(self, rows: list[list[int]], mask: Any) -> tuple[Any, Any]:
        """Left-pad per-row continuations to one width (holes stay masked) and extend the mask."""
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        new = torch.zeros((len(rows), width), dtype=mask.dtype)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r) :] = torch.tensor(r)
                new[i, width - len(r) :] = 1
        return ids.to(self.device), torch.cat([mask, new.to(mask.device)], dim=1)

    def label_texts(self, rows: pd.DataFrame) -> tuple[np.ndarray, list[str | None]]:
        """``(probabilities (n, L), rationales)`` for labellable review rows (one batch)."""
        prompts = [self.prompt(row) for row in rows.to_dict("records")]
        split = self._split_shared_prefix(prompts)
        if split is None:
            enc = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        else:
            # The system turn (most of the prompt: definitions, examples) is encoded once per labeller
            # and its KV cache reused; each batch encodes only the reviews.
            shared, enc = split
        probs = np.zeros((len(enc), len(self.steps)), dtype=np.float64)
        pending: list[list[int]] = []
        state: Any = None
        for j, (prefix, t_id, f_id, t_rest, f_rest) in enumerate(self.steps):
            if j == 0 and split is None:
                logits, state = self._start([p + prefix for p in enc])
            elif j == 0:
                state = self._start_from_prefix(shared, len(enc))
                logits, state = self._continue(state, [p + prefix for p in enc])
            else:
                logits, state = self._continue(state, [p + prefix for p in pending])
            diff = (logits[:, t_id] - logits[:, f_id]).double().cpu().numpy()
            probs[:, j] = 1.0 / (1.0 + np.exp(-diff))
            # The more likely value is what the teacher "said": the next labels are conditioned on it.
            pending = [[t_id, *t_rest] if p >= 0.5 else [f_id, *f_rest] for p in probs[:, j]]
        rationales: list[str | None] = [None] * len(enc)
        if self.rationale:
            rationales = self._generate_rationale(state, [p + self.rationale_ids for p in pending])
        return probs, rationales

    def _banned_tokens(self, vocab: int) -> Any:
        """Tokens that would break the JSON string: backslashes, control characters, special tokens."""
        import torch

        if self._banned is None or self._banned.shape[0] != vocab:
            banned = torch.zeros(vocab, dtype=torch.bool)
            special = set(self.tokenizer.all_special_ids)
            special |= set(getattr(self.tokenizer, "added_tokens_decoder", {}) or {})
            for i in range(vocab):
                text = self.tokenizer.decode([i]) if i < len(self.tokenizer) else ""
                if i in special or not text or "\\" in text or any(not c.isprintable() for c in text):
                    banned[i] = True
            self._banned = banned
        return self._banned

    def _generate_rationale(self, state: Any, first: list[list[int]]) -> list[str | None]:
        n = len(first)
        done = [False] * n
        pieces: list[list[int]] = [[] for _ in range(n)]
        texts: list[str] = [""] * n
        rows = first
        for _ in range(self.max_rationale_tokens):
            logits, state = self._continue(state, rows)
            banned = self._banned_tokens(logits.shape[-1]).to(logits.device)
            nxt = logits.masked_fill(banned, float("-inf")).argmax(-1).tolist()
            for i, tok in enumerate(nxt):
                if done[i]:
                    continue
                piece = self.tokenizer.decode([tok])
                if '"' in piece:  # the closing quote ends the string; keep what came before it
                    texts[i] = self.tokenizer.decode(pieces[i]) + piece.split('"', 1)[0]
                    done[i] = True
                else:
                    pieces[i].append(tok)
            if all(done):
                break
            rows = [[tok] for tok in nxt]
        return [clean_reason(texts[i] if done[i] else self.tokenizer.decode(pieces[i])) for i in range(n)]


# --------------------------------------------------------------------------------------------- teacher identity


def _check_teacher_exists(teacher: str) -> None:
    if not os.path.isdir(teacher) and not re.fullmatch(r"[\w.-]+/[\w.-]+", teacher):
        raise FileNotFoundError(
            f"teacher model not found: {teacher!r} (give a model folder or a Hub id like org/name)"
        )


def _cached_hub_revision(repo_id: str) -> str | None:
    """The commit of ``repo_id`` in the local Hub cache (what an offline load would use), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        for name in ("config.json", "adapter_config.json"):
            cached = try_to_load_from_cache(repo_id, name)
            if isinstance(cached, str):
                return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    except Exception:  # noqa: BLE001 - no cache, invalid id...: the id alone identifies the teacher
        return None
    return None


def teacher_fingerprint(teacher: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies the teacher's weights, for the job identity of a labelling folder.

    A local folder: its resolved path and :func:`~hf_spamguard.data.reviews.folder_fingerprint` (names,
    sizes, mtimes of its files), plus the fingerprint of its base model when it is a peft adapter. A Hub
    id: the id and the commit in the local Hub cache (no network), or ``None`` when it is not cached yet.
    """
    teacher = str(teacher)
    _check_teacher_exists(teacher)
    if not os.path.isdir(teacher):
        return {"hub_id": teacher, "revision": _cached_hub_revision(teacher)}
    fp: dict[str, Any] = {"folder": str(Path(teacher).resolve()), "files": folder_fingerprint(teacher)}
    from hf_spamguard.modeling import _adapter_base, is_adapter_folder

    if is_adapter_folder(teacher):
        # An adapter is only half the model: a retrained base changes the labels as much.
        fp["base"] = teacher_fingerprint(_adapter_base(teacher, None))
    return fp


def _same_teacher(old: Any, new: Any) -> bool:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return old == new
    if "hub_id" in old and old.get("revision") is None:
        # The job started before the teacher was in the local cache, so its revision was unknown then;
        # the first load recorded the revision actually used (see label_reviews).
        return old["hub_id"] == new.get("hub_id")
    return old.keys() == new.keys() and all(_same_teacher(old[k], new[k]) for k in old)


def _dtype_name(device: str | None, dtype: str | None) -> str:
    """The dtype the teacher will run in, resolved: ``None`` means bfloat16 on GPU and float32 on CPU,
    and labels from the two differ, so the job records the dtype used, not the option given."""
    import torch

    from hf_spamguard.modeling import choose_device_and_dtype

    if dtype not in (None, "auto") and not isinstance(getattr(torch, str(dtype), None), torch.dtype):
        raise ValueError(f"dtype: {dtype!r} is not a torch dtype (e.g. bfloat16, float16, float32, auto)")
    _, resolved = choose_device_and_dtype(_default_device(device), dtype)
    return str(resolved).removeprefix("torch.")


# --------------------------------------------------------------------------------------------- shards & manifest


def _shard_name(k: int) -> str:
    return f"shard-{k:06d}.parquet"


def _shard_schema(label_names: Sequence[str]) -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("row", pa.int64()),
            ("id", pa.string()),
            ("status", pa.string()),
            ("unlabellable_reason", pa.string()),
            *[(f"p_{name}", pa.float64()) for name in label_names],
            ("rationale", pa.string()),
            ("text", pa.string()),
            ("rating", pa.float64()),
            ("place_name", pa.string()),
            ("category", pa.string()),
            ("gmap_id", pa.string()),
        ]
    )


def _write_table_atomic(path: Path, table: Any) -> None:
    import pyarrow.parquet as pq

    with atomic_path(path, durable=True) as tmp:
        pq.write_table(table, tmp)


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a labelling folder (job identity, shard progress, completion)."""
    path = Path(out_dir) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no labelling manifest in {out_dir} (expected {MANIFEST_FILE})")
    return json.loads(path.read_text(encoding="utf-8"))


def _identity(config: LabelingConfig, taxonomy: Taxonomy) -> dict[str, Any]:
    prompt_hash = hashlib.sha256(review_system_prompt(taxonomy).encode()).hexdigest()[:16]
    return {
        "teacher": config.teacher,
        "teacher_fingerprint": teacher_fingerprint(config.teacher),
        "dtype": _dtype_name(config.device, config.dtype),
        "taxonomy": taxonomy.to_dict(),
        "prompt_sha256": prompt_hash,
        "input": config.input,
        "meta": config.meta,
        "input_files": input_fingerprint(config.input, config.meta),
        "shard_size": config.shard_size,
        "rationale": config.rationale,
        "max_rationale_tokens": config.max_rationale_tokens if config.rationale else None,
        "max_text_chars": config.max_text_chars,
        "limit": config.limit,
    }


#: Identity fields that manifests written by earlier versions lack: adopted with a warning on resume.
_LATER_IDENTITY_FIELDS = ("teacher_fingerprint", "dtype")


def _check_identity(old: dict[str, Any], new: dict[str, Any], out_dir: Path) -> None:
    path = out_dir / MANIFEST_FILE
    for key, value in new.items():
        if key not in old and key in _LATER_IDENTITY_FIELDS:
            logger.warning(
                "%s: the job predates recording %r; assuming the current one (%r) is the one it started with",
                path,
                key,
                value,
            )
            continue
        same = _same_teacher(old.get(key), value) if key == "teacher_fingerprint" else old.get(key) == value
        if same:
            continue
        if key == "teacher_fingerprint":
            how = (
                "the teacher's files changed since this job started (retrained, replaced or another Hub "
                "revision) and its labels would mix two models: label into a new --out (or delete "
                f"{out_dir} to start over), or restore the teacher the job started with"
            )
        elif key == "dtype":
            how = (
                f"resume with --dtype {old.get(key)} (the default is bfloat16 on GPU, float32 on CPU) "
                "or use a new --out"
            )
        else:
            how = "resume with the same settings or use a new --out"
        raise ValueError(
            f"{path}: this folder holds a labelling job with a different {key!r} "
            f"({old.get(key)!r} there, {value!r} now); {how}"
        )


class _Progress:
    """Shard bookkeeping of one process: which shard files exist, and their row counts."""

    def __init__(self, out_dir: Path) -> None:
        self.shard_dir = out_dir / SHARD_DIR
        self.shards: dict[int, dict[str, int]] = {}

    def scan(self) -> dict[int, dict[str, int]]:
        import pyarrow.parquet as pq

        for path in self.shard_dir.glob("shard-*.parquet"):
            k = int(path.stem.split("-")[1])
            if k in self.shards:
                continue
            try:
                meta = pq.ParquetFile(path).metadata
            except Exception:  # noqa: BLE001 - a corrupt file (disk failure): relabel that shard
                logger.warning("%s is unreadable; it will be labelled again", path)
                path.unlink(missing_ok=True)
                continue
            info = json.loads((meta.metadata or {}).get(b"spamguard", b"{}"))
            self.shards[k] = {"rows": meta.num_rows, **info}
        return self.shards


def _write_manifest(
    out_dir: Path, identity: dict, n_rows: int, n_shards: int, progress: _Progress, extra: dict
) -> None:
    shards = progress.scan()
    manifest = {
        "format": FORMAT,
        **identity,
        "n_rows": n_rows,
        "n_shards": n_shards,
        "shards_done": len(shards),
        "rows_done": int(sum(s["rows"] for s in shards.values())),
        "shards": {_shard_name(k): shards[k] for k in sorted(shards)},
        **extra,
    }
    atomic_write_json(out_dir / MANIFEST_FILE, manifest, indent=1, ensure_ascii=False, durable=True)


def _env_int(names: tuple[str, ...]) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return None


def _process_rank(process_index: int | None, num_processes: int | None) -> tuple[int, int]:
    # Processes coordinate through the shard files only, so no process group (and no barrier that
    # could time out on a long job) is needed: the rank and world size come from the launcher's
    # environment. torchrun / `accelerate launch --multi_gpu` export RANK / WORLD_SIZE; MPI launchers
    # (`mpirun -n N accelerate launch --cpu ...`, accelerate's multi-CPU mode) export PMI_* / OMPI_*.
    if num_processes is None:
        num_processes = (
            _env_int(("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")) or 1
        )
    if process_index is None:
        process_index = _env_int(("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")) or 0
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process index {process_index} outside 0..{num_processes - 1}")
    return process_index, num_processes


def _default_device(device: str | None) -> str | None:
    if device is not None:
        return device
    import torch

    if (
        os.environ.get("ACCELERATE_USE_CPU", "").lower() in {"1", "true", "yes"}
        or not torch.cuda.is_available()
    ):
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def _iter_shards(config: LabelingConfig, n_rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    seen = 0
    for k, chunk in enumerate(iter_reviews(config.input, meta=config.meta, chunk_size=config.shard_size)):
        if seen >= n_rows:
            return
        chunk = chunk.iloc[: n_rows - seen]
        chunk.index = range(seen, seen + len(chunk))
        seen += len(chunk)
        yield k, chunk


def _label_shard(labeler: TeacherLabeler, chunk: pd.DataFrame, batch_size: int, bar: Any, rank: int) -> Any:
    import pyarrow as pa

    names = labeler.taxonomy.label_names
    n = len(chunk)
    probs = np.full((n, len(names)), np.nan)
    rationales: list[str | None] = [None] * n
    reasons = [unlabellable_reason(row) for row in chunk.to_dict("records")]
    ok = [i for i in range(n) if reasons[i] is None]
    # Similar lengths batched together: less padding. Deterministic, so results do not depend on N.
    ok.sort(key=lambda i: len(str(chunk["text"].iloc[i])))
    bar.update(n - len(ok))
    for start in range(0, len(ok), batch_size):
        idx = ok[start : start + batch_size]
        p, r = labeler.label_texts(chunk.iloc[idx])
        probs[idx] = p
        for i, text in zip(idx, r, strict=True):
            rationales[i] = text
        bar.update(len(idx))

    def col(name: str) -> list[Any]:
        values = chunk[name].tolist() if name in chunk else [None] * n
        return [None if (isinstance(v, float) and math.isnan(v)) else v for v in values]

    data: dict[str, Any] = {
        "row": chunk.index.to_list(),
        "id": chunk["id"].astype(str).tolist(),
        "status": [STATUS_LABELLED if r is None else STATUS_UNLABELLABLE for r in reasons],
        "unlabellable_reason": reasons,
    }
    for j, name in enumerate(names):
        data[f"p_{name}"] = [None if math.isnan(v) else float(v) for v in probs[:, j]]
    data["rationale"] = rationales
    for name in PASSTHROUGH_COLUMNS:
        values = col(name)
        data[name] = [None if v is None else (float(v) if name == "rating" else str(v)) for v in values]
    table = pa.Table.from_pydict(data, schema=_shard_schema(names))
    info = {"labelled": len(ok), "unlabellable": n - len(ok), "process": str(rank)}
    return table.replace_schema_metadata({"spamguard": json.dumps(info)}), info


def label_reviews(
    config: LabelingConfig,
    *,
    process_index: int | None = None,
    num_processes: int | None = None,
    labeler: TeacherLabeler | None = None,
    progress: bool = True,
) -> LabelingResult:
    """Label ``config.input`` with the teacher into ``config.out`` (resumable; see the module docstring).

    ``process_index`` / ``num_processes`` default to ``RANK`` / ``WORLD_SIZE`` (set by ``accelerate
    launch`` and ``torchrun``). Returns what this process did; ``labels_path`` is set once every shard
    exists and the merge is written.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    rank, world = _process_rank(process_index, num_processes)
    taxonomy = load_taxonomy(config.taxonomy)
    out = Path(config.out)
    identity = _identity(config, taxonomy)  # before mkdir: a missing teacher or bad dtype leaves no folder
    (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST_FILE
    old: dict[str, Any] | None = None
    if manifest_path.is_file():
        old = read_manifest(out)
        _check_identity(old, identity, out)
        n_rows = int(old["n_rows"])
    else:
        n_rows = count_reviews(config.input, meta=config.meta)
        if config.limit is not None:
            n_rows = min(n_rows, config.limit)
    n_shards = math.ceil(n_rows / config.shard_size)
    mine = [k for k in range(n_shards) if k % world == rank]
    # Temporary files of a killed run of this process's shards: nobody else writes those names.
    for k in mine:
        for tmp in (out / SHARD_DIR).glob(f".{_shard_name(k)}.*.tmp"):
            tmp.unlink(missing_ok=True)
    prog = _Progress(out)
    done = prog.scan()
    _write_manifest(out, identity, n_rows, n_shards, prog, {"complete": False})

    def shard_rows(k: int) -> int:
        return min(config.shard_size, n_rows - k * config.shard_size)

    todo = [k for k in mine if k not in done]
    total = sum(shard_rows(k) for k in mine)
    labelled_now = rows_now = 0
    if todo:
        if labeler is None:
            labeler = TeacherLabeler.from_pretrained(
                config.teacher,
                taxonomy,
                device=_default_device(config.device),
                dtype=config.dtype,
                max_text_chars=config.max_text_chars,
                rationale=config.rationale,
                max_rationale_tokens=config.max_rationale_tokens,
            )
            # A Hub teacher is in the local cache only now: record the revision actually loaded, and
            # refuse when the Hub moved on since the job's earlier shards were labelled.
            loaded = teacher_fingerprint(config.teacher)
            if loaded != identity["teacher_fingerprint"]:
                identity = {**identity, "teacher_fingerprint": loaded}
                if old is not None:
                    _check_identity(old, identity, out)
        todo_set = set(todo)
        with tqdm(
            total=total,
            initial=total - sum(shard_rows(k) for k in todo),
            unit="review",
            desc="labelling" if world == 1 else f"labelling [{rank + 1}/{world}]",
            disable=not progress,
            dynamic_ncols=True,
            smoothing=0.1,
        ) as bar:
            for k, chunk in _iter_shards(config, n_rows):
                if k not in todo_set:
                    continue
                table, info = _label_shard(labeler, chunk, config.batch_size, bar, rank)
                _write_table_atomic(out / SHARD_DIR / _shard_name(k), table)
                prog.shards[k] = {"rows": len(chunk), **info}
                _write_manifest(out, identity, n_rows, n_shards, prog, {"complete": False})
                labelled_now += 1
                rows_now += len(chunk)
                todo_set.discard(k)
                if not todo_set:
                    break
        if todo_set:
            raise RuntimeError(
                f"the input ended before shards {sorted(todo_set)[:5]}: did it change while labelling?"
            )
    labels_path = None
    if len(prog.scan()) == n_shards:
        labels_path = merge_shards(out)
    return LabelingResult(
        out_dir=out,
        n_rows=n_rows,
        n_shards=n_shards,
        shards_done=len(prog.shards),
        shards_labelled_now=labelled_now,
        rows_labelled_now=rows_now,
        seconds=time.perf_counter() - t0,
        labels_path=labels_path,
    )


def merge_shards(out_dir: str | os.PathLike[str]) -> Path:
    """Concatenate every shard, in shard order, into ``labels.parquet`` (streamed; atomic; idempotent).

    Raises when a shard is missing. Checks that the rows are exactly ``0 .. n_rows-1`` once each.
    """
    import pyarrow.parquet as pq

    out = Path(out_dir)
    manifest = read_manifest(out)
    n_rows, n_shards = int(manifest["n_rows"]), int(manifest["n_shards"])
    names = [lab["name"] for lab in manifest["taxonomy"]["labels"]]
    paths = [out / SHARD_DIR / _shard_name(k) for k in range(n_shards)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{out}: {len(missing)} shard(s) not labelled yet (first: {missing[0]}); run the labelling again"
        )
    path = out / LABELS_FILE
    expected = 0
    counts = {"labelled": 0, "unlabellable": 0}
    positives = dict.fromkeys(names, 0)
    with atomic_path(path, durable=True) as tmp, pq.ParquetWriter(tmp, _shard_schema(names)) as writer:
        for p in paths:
            table = pq.read_table(p).replace_schema_metadata(None)
            rows = table.column("row").to_numpy()
            if len(rows) and not np.array_equal(rows, np.arange(expected, expected + len(rows))):
                raise ValueError(
                    f"{p}: rows are not {expected}..{expected + len(rows) - 1}; the shard is inconsistent"
                )
            expected += len(rows)
            status = table.column("status").to_pylist()
            counts["labelled"] += status.count(STATUS_LABELLED)
            counts["unlabellable"] += status.count(STATUS_UNLABELLABLE)
            for name in names:
                col = table.column(f"p_{name}").to_numpy(zero_copy_only=False)
                positives[name] += int(np.nansum(col >= 0.5))
            writer.write_table(table)
        if expected != n_rows:  # raised inside: the temporary file goes, labels.parquet is untouched
            raise ValueError(f"{out}: shards hold {expected} rows, the manifest says {n_rows}")
    summary = {
        "complete": True,
        "labels_file": LABELS_FILE,
        "counts": counts,
        "teacher_positive_rate": {
            k: (v / counts["labelled"] if counts["labelled"] else None) for k, v in positives.items()
        },
    }
    manifest.update(summary)
    atomic_write_json(out / MANIFEST_FILE, manifest, indent=1, ensure_ascii=False, durable=True)
    return path


def load_labels(source: str | os.PathLike[str], *, labelled_only: bool = False) -> pd.DataFrame:
    """Teacher labels as a DataFrame, from a labelling folder (``labels.parquet``) or a Parquet file."""
    path = Path(source)
    if path.is_dir():
        path = path / LABELS_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{source}: no {LABELS_FILE}; is the labelling complete? (see manifest.json)"
            )
    df = pd.read_parquet(path)
    if labelled_only and "status" in df:
        df = df[df["status"] == STATUS_LABELLED].reset_index(drop=True)
    return df
