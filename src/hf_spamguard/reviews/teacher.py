"""The review teacher: a large chat model's per-label probabilities for reviews, and its identity.

Per-label probabilities come from the teacher's logits, never from parsed free text: the answer
``{"advertisement": <v>, "irrelevant": <v>, ...}`` is forced segment by segment on one KV cache
(:mod:`hf_spamguard.decoding`); after each ``"<label>": `` the next-token logits of ``true`` vs ``false``
give the label's probability, the more likely value is appended and the cache continues to the next
label. One prompt encoding serves all labels (and the optional rationale, generated greedily after the
labels under the JSON-string token rule the listing scorer uses). The system turn, the same for every
review, is encoded once per labeller and its cache reused.

:func:`teacher_fingerprint` is what identifies the teacher's weights in a labelling job
(:mod:`hf_spamguard.reviews.labeling`). torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hf_spamguard.files import ADAPTER_CONFIG_FILE, CONFIG_FILE
from hf_spamguard.hub_io import check_hub, is_hub_id, missing_path_error
from hf_spamguard.jobs import folder_fingerprint
from hf_spamguard.prompts import (
    REVIEW_RATIONALE_PREFIX,
    PromptConfig,
    build_review_messages,
    review_answer_segments,
)
from hf_spamguard.taxonomy import Taxonomy, load_taxonomy
from hf_spamguard.verdict import clean_reason

__all__ = [
    "TeacherLabeler",
    "default_device",
    "dtype_name",
    "same_teacher",
    "teacher_fingerprint",
    "teacher_tokenizer",
]


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
        from hf_spamguard.decoding import model_calls

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
        # Qwen-VL models walk the cache with multimodal rotary positions, plain decoders with 1-D ones.
        # (No model: another engine runs it, hf_spamguard.reviews.vllm_teacher.)
        self._own_positions = model is not None and model_calls(model).rope is not None

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
        from hf_spamguard.modeling import choose_device_and_dtype, load_model

        path = str(path)
        _check_teacher_exists(path)
        tokenizer = teacher_tokenizer(path)
        if _is_qwen3_vl(path):
            model = load_model(path, device=device, dtype=dtype)
        else:
            from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

            dev, dt = choose_device_and_dtype(device, dtype)
            try:
                model = AutoModelForImageTextToText.from_pretrained(path, dtype=dt)
            except ValueError:  # a text-only chat model
                model = AutoModelForCausalLM.from_pretrained(path, dtype=dt)
            model = model.to(dev).eval()
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

    def _start(self, rows: list[list[int]], shared: list[int] | None) -> Any:
        """The walk state after each prompt row (after the cached ``shared`` prefix, when given)."""
        from hf_spamguard.decoding import extend, prefill_tokens, repeat_state

        if shared is None:
            return prefill_tokens(self.model, rows, self.pad_id)
        if self._prefix_state is None:
            self._prefix_state = prefill_tokens(self.model, [shared], self.pad_id)
        state = repeat_state(self._prefix_state, len(rows))
        return extend(self.model, state, rows, pad_id=self.pad_id)

    def label_texts(self, rows: pd.DataFrame) -> tuple[np.ndarray, list[str | None]]:
        """``(probabilities (n, L), rationales)`` for labellable review rows (one batch)."""
        from hf_spamguard.decoding import extend, generate_reasons

        prompts = [self.prompt(row) for row in rows.to_dict("records")]
        split = self._split_shared_prefix(prompts)
        if split is None:
            shared = None
            enc = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        else:
            # The system turn (most of the prompt: definitions, examples) is encoded once per labeller
            # and its KV cache reused; each batch encodes only the reviews.
            shared, enc = split
        probs = np.zeros((len(enc), len(self.steps)), dtype=np.float64)
        pending: list[list[int]] = []
        state: Any = None
        for j, (prefix, t_id, f_id, t_rest, f_rest) in enumerate(self.steps):
            if j == 0:
                state = self._start([p + prefix for p in enc], shared)
            else:
                state = extend(self.model, state, [p + prefix for p in pending], pad_id=self.pad_id)
            logits = state.last_logits
            diff = (logits[:, t_id] - logits[:, f_id]).double().cpu().numpy()
            probs[:, j] = 1.0 / (1.0 + np.exp(-diff))
            # The more likely value is what the teacher "said": the next labels are conditioned on it.
            pending = [[t_id, *t_rest] if p >= 0.5 else [f_id, *f_rest] for p in probs[:, j]]
        rationales: list[str | None] = [None] * len(enc)
        if self.rationale:
            state = extend(self.model, state, [p + self.rationale_ids for p in pending], pad_id=self.pad_id)
            raw = generate_reasons(
                self.model,
                state,
                self.tokenizer,
                max_new_tokens=self.max_rationale_tokens,
                pad_id=self.pad_id,
            )
            rationales = [clean_reason(text) for text in raw]
        return probs, rationales


def _is_qwen3_vl(path: str) -> bool:
    """Qwen3-VL folders (and peft adapters, the project's own) load through :mod:`hf_spamguard.modeling`."""
    from transformers import AutoConfig

    from hf_spamguard.modeling import is_adapter_folder

    if is_adapter_folder(path):
        return True
    return getattr(AutoConfig.from_pretrained(path), "model_type", "").startswith("qwen3_vl")


def teacher_tokenizer(path: str | os.PathLike[str]) -> Any:
    """The teacher's tokenizer (left padding): its processor's for Qwen3-VL folders and adapters, else
    ``AutoTokenizer``'s. Every engine renders and tokenises the teacher's prompts with it."""
    path = str(path)
    if _is_qwen3_vl(path):
        from hf_spamguard.modeling import load_processor

        tokenizer = load_processor(path).tokenizer
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    return tokenizer


# --------------------------------------------------------------------------------------------- identity


def _check_teacher_exists(teacher: str) -> None:
    """A local teacher must exist; a Hub id must be reachable (one short probe instead of the loaders'
    retries), else one line saying so."""
    if os.path.isdir(teacher):
        return
    if not is_hub_id(teacher):
        raise missing_path_error(teacher, "teacher model folder")
    if _cached_hub_revision(teacher) is None:  # a cached teacher loads without the Hub
        check_hub(teacher)


def _cached_hub_revision(repo_id: str) -> str | None:
    """The commit of ``repo_id`` in the local Hub cache (what an offline load would use), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        for name in (CONFIG_FILE, ADAPTER_CONFIG_FILE):
            cached = try_to_load_from_cache(repo_id, name)
            if isinstance(cached, str):
                return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    except Exception:  # noqa: BLE001 - no cache, invalid id...: the id alone identifies the teacher
        return None
    return None


def teacher_fingerprint(teacher: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies the teacher's weights, for the job identity of a labelling folder.

    A local folder: its resolved path and :func:`~hf_spamguard.jobs.folder_fingerprint` (names, sizes,
    mtimes of its files), plus the fingerprint of its base model when it is a peft adapter. A Hub id:
    the id and the commit in the local Hub cache (no network), or ``None`` when it is not cached yet.
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


def same_teacher(old: Any, new: Any) -> bool:
    """Whether two :func:`teacher_fingerprint` values name the same weights."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return old == new
    if "hub_id" in old and old.get("revision") is None:
        # The job started before the teacher was in the local cache, so its revision was unknown then;
        # the first load recorded the revision actually used (see label_reviews).
        return old["hub_id"] == new.get("hub_id")
    return old.keys() == new.keys() and all(same_teacher(old[k], new[k]) for k in old)


def default_device(device: str | None) -> str | None:
    """The teacher's device: ``device`` when given, else this process's GPU (``LOCAL_RANK``), else CPU."""
    if device is not None:
        return device
    import torch

    if (
        os.environ.get("ACCELERATE_USE_CPU", "").lower() in {"1", "true", "yes"}
        or not torch.cuda.is_available()
    ):
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def dtype_name(device: str | None, dtype: str | None) -> str:
    """The dtype the teacher will run in, resolved: ``None`` means bfloat16 on GPU and float32 on CPU,
    and labels from the two differ, so the job records the dtype used, not the option given."""
    import torch

    from hf_spamguard.modeling import choose_device_and_dtype

    if dtype not in (None, "auto") and not isinstance(getattr(torch, str(dtype), None), torch.dtype):
        raise ValueError(f"dtype: {dtype!r} is not a torch dtype (e.g. bfloat16, float16, float32, auto)")
    _, resolved = choose_device_and_dtype(default_device(device), dtype)
    return str(resolved).removeprefix("torch.")
