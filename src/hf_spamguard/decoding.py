"""One KV-cache walk and one constrained JSON-string generator, for listing scoring and review teachers.

Both product lines read verdicts from a causal (vision-)language model the same way: encode the prompt
once (:func:`prefill`), append forced answer text segment by segment to the *same* KV cache
(:func:`extend`), read ``l_true - l_false`` at each value (:func:`forced_prefix_logit_diff`,
:func:`true_false_logit_diff`), and optionally decode a free-text JSON string (the listing ``reason``,
the review ``rationale``) greedily under one token rule (:class:`ReasonLogitsProcessor`,
:func:`generate_reasons`).

Positions are explicit, so a row gets the same positions whatever padding its batch adds (batched
equals unbatched): plain decoders get 1-D text positions from the attention mask; Qwen-VL models
(multimodal rotary positions, M-RoPE, which run ahead of text positions after an image) get the text
row plus the three M-RoPE rows from the model's ``get_rope_index``. How a model takes its cache
(``past_key_values`` or, from transformers 5, ``cache``), whether it accepts ``logits_to_keep`` and
where its ``get_rope_index`` lives are looked up once per model (:func:`model_calls`).

The reason-token rule, for every decoded token text: allowed inside the JSON string iff it is not
empty, not a special or added token, and has no ``"``, no ``\\`` and only printable characters
(``str.isprintable``: no Unicode category C character, so no newline, CR, tab or other control or
format character, and no separator but the ASCII space). A token whose text is such a safe head
followed by ``"`` and then only spaces / ``}`` closes the string. End-of-turn tokens end it too.
"""

from __future__ import annotations

import codecs
import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from transformers import LogitsProcessor

__all__ = [
    "DecodeState",
    "ModelCalls",
    "ReasonLogitsProcessor",
    "extend",
    "forced_prefix_logit_diff",
    "generate_reasons",
    "json_string_safe",
    "left_pad",
    "model_calls",
    "prefill",
    "prefill_tokens",
    "repeat_state",
    "true_false_logit_diff",
]


# --------------------------------------------------------------------------------------------------
# How to call a model (looked up once per model)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelCalls:
    """What the walk needs to know about a model's forward, found once and cached on the model.

    ``cache_kwarg``: the name of the KV-cache argument (transformers 5.x renamed ``past_key_values`` to
    ``cache``; the old name works until 5.40 with a warning, and the exported pipeline code must run
    on both). ``logits_to_keep``: whether the forward can skip the logits of every position but the
    last. ``rope``: the module with ``get_rope_index`` (Qwen-VL M-RoPE), or None for plain decoders.
    """

    cache_kwarg: str
    logits_to_keep: bool
    rope: Any


def _find_rope_module(model: Any) -> Any:
    for module in model.modules():
        if hasattr(module, "get_rope_index") and not isinstance(module, type(model)):
            return module
    return model if hasattr(model, "get_rope_index") else None


def model_calls(model: Any) -> ModelCalls:
    """The :class:`ModelCalls` of ``model`` (a transformers model, possibly wrapped by peft)."""
    cached = getattr(model, "_spamguard_calls", None)
    if cached is not None:
        return cached
    # A peft wrapper forwards **kwargs: the signature that counts is the base model's.
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(type(base).forward).parameters
    calls = ModelCalls(
        cache_kwarg="cache" if "cache" in params else "past_key_values",
        logits_to_keep="logits_to_keep" in params,
        rope=_find_rope_module(model),
    )
    # object.__setattr__: nn.Module.__setattr__ would register a plain attribute's module as a child.
    object.__setattr__(model, "_spamguard_calls", calls)
    return calls


def _model_device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _model_dtype(model: Any) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _forward(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    cache: Any,
    **extra,
) -> tuple[torch.Tensor, Any]:
    calls = model_calls(model)
    kwargs: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": position_ids,
        "use_cache": True,
        **extra,
    }
    if calls.logits_to_keep:
        kwargs["logits_to_keep"] = 1
    if cache is not None:
        kwargs[calls.cache_kwarg] = cache
    out = model(**kwargs)
    new_cache = getattr(out, "cache", None)
    if new_cache is None:
        new_cache = getattr(out, "past_key_values", None)
    return out.logits[:, -1, :].float(), new_cache


# --------------------------------------------------------------------------------------------------
# The walk
# --------------------------------------------------------------------------------------------------
@dataclass
class DecodeState:
    """A batch part-way through decoding: the KV cache and where each row continues.

    ``last_logits`` (float32, ``(batch, vocab)``) are the logits of the next token of every row.
    ``text_pos`` is the next 1-D text position per row; ``rope_pos`` the next M-RoPE position (None for
    plain decoders).
    """

    cache: Any
    attention_mask: torch.Tensor
    text_pos: torch.Tensor
    rope_pos: torch.Tensor | None
    last_logits: torch.Tensor


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, *, dtype: torch.dtype = torch.long
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)`` of shape ``(len(rows), longest)``: each row right-aligned, ``pad_id`` / 0 before it.

    Left padding puts every row's last token in the last column, where the next forced token goes.
    Rows may be empty (all padding). ``mask`` is ``torch.long``.
    """
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=dtype)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            ids[i, width - len(row) :] = torch.tensor(list(row), dtype=dtype)
            mask[i, width - len(row) :] = 1
    return ids, mask


def _text_positions(mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2... over the attended tokens of each row; padding gets 0 (it is masked anyway)."""
    mask = mask.long()
    return (mask.cumsum(-1) - 1).clamp(min=0) * mask


@torch.no_grad()
def prefill(model: Any, inputs: dict[str, Any]) -> DecodeState:
    """Encode a left-padded batch (processor output: input_ids, attention_mask, optional pixel_values,
    image_grid_thw, mm_token_type_ids) in one forward pass and return the state after its last token.
    """
    calls = model_calls(model)
    device = _model_device(model)
    input_ids = inputs["input_ids"].to(device)
    attention_mask = inputs.get("attention_mask")
    attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)
    text = _text_positions(attention_mask)
    grid = inputs.get("image_grid_thw")
    grid = grid.to(device) if grid is not None else None
    extra: dict[str, Any] = {}
    if calls.rope is None:
        position_ids, rope_pos = text, None
        if inputs.get("pixel_values") is not None:
            extra["pixel_values"] = inputs["pixel_values"].to(device, _model_dtype(model))
            if grid is not None:
                extra["image_grid_thw"] = grid
    else:
        mm = inputs.get("mm_token_type_ids")
        mm = torch.zeros_like(input_ids, dtype=torch.int) if mm is None else mm.to(device)
        rope3d, _ = calls.rope.get_rope_index(
            input_ids, mm_token_type_ids=mm, image_grid_thw=grid, attention_mask=attention_mask
        )
        position_ids = torch.cat([text[None], rope3d.to(text.dtype)], dim=0)
        rope_pos = rope3d.masked_fill(attention_mask[None] == 0, -1).amax(dim=(0, 2)).long() + 1
        if inputs.get("pixel_values") is not None:
            extra["pixel_values"] = inputs["pixel_values"].to(device, _model_dtype(model))
            extra["image_grid_thw"] = grid
            extra["mm_token_type_ids"] = mm
    logits, cache = _forward(model, input_ids, attention_mask, position_ids, None, **extra)
    return DecodeState(
        cache=cache,
        attention_mask=attention_mask,
        text_pos=attention_mask.long().sum(-1),
        rope_pos=rope_pos,
        last_logits=logits,
    )


def prefill_tokens(model: Any, rows: Sequence[Sequence[int]], pad_id: int) -> DecodeState:
    """:func:`prefill` of text-only token rows (left-padded here)."""
    ids, mask = left_pad(rows, pad_id)
    return prefill(model, {"input_ids": ids, "attention_mask": mask})


@torch.no_grad()
def extend(model: Any, state: DecodeState, tokens: Sequence[Sequence[int]], pad_id: int = 0) -> DecodeState:
    """Append ``tokens[i]`` (any length, may be empty) to row ``i`` of ``state`` in one forward pass.

    Ragged rows are left-padded inside the new chunk with attention 0, so every row continues exactly
    where it stopped. Rows with no new tokens keep their ``last_logits``.
    """
    batch = state.attention_mask.shape[0]
    if len(tokens) != batch:
        raise ValueError(f"extend: got {len(tokens)} token lists for a batch of {batch}")
    if max((len(t) for t in tokens), default=0) == 0:
        return state
    device = state.attention_mask.device
    ids, mask = left_pad(tokens, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    lengths = mask.sum(-1)
    offs = _text_positions(mask)
    text = (state.text_pos[:, None] + offs) * mask
    if state.rope_pos is None:
        position_ids = text
    else:
        rope = (state.rope_pos[:, None] + offs) * mask
        position_ids = torch.stack([text, rope, rope, rope], dim=0)
    full_mask = torch.cat([state.attention_mask, mask.to(state.attention_mask.dtype)], dim=1)
    logits, cache = _forward(model, ids, full_mask, position_ids, state.cache)
    keep = lengths == 0
    if keep.any():
        logits = torch.where(keep[:, None], state.last_logits, logits)
    return replace(
        state,
        cache=cache,
        attention_mask=full_mask,
        text_pos=state.text_pos + lengths,
        rope_pos=None if state.rope_pos is None else state.rope_pos + lengths,
        last_logits=logits,
    )


def repeat_state(state: DecodeState, n: int) -> DecodeState:
    """A batch of ``n`` copies of a one-row ``state`` (e.g. a shared system prompt encoded once).

    The cache is deep-copied first: the walk appends to a cache in place, and ``state`` is reused.
    """
    if state.attention_mask.shape[0] != 1:
        raise ValueError(f"repeat_state: expected a one-row state, got {state.attention_mask.shape[0]} rows")
    cache = copy.deepcopy(state.cache)
    if hasattr(cache, "batch_repeat_interleave"):
        cache.batch_repeat_interleave(n)
    else:
        for layer in cache.layers:
            layer.batch_repeat_interleave(n)
    return replace(
        state,
        cache=cache,
        attention_mask=state.attention_mask.expand(n, -1).clone(),
        text_pos=state.text_pos.expand(n).clone(),
        rope_pos=None if state.rope_pos is None else state.rope_pos.expand(n).clone(),
        last_logits=state.last_logits.expand(n, -1).clone(),
    )


def true_false_logit_diff(logits: torch.Tensor, true_id: int, false_id: int) -> torch.Tensor:
    """``l_true - l_false`` per row (float32): ``sigmoid`` of it is P(true) renormalised over the two."""
    logits = logits.float()
    return logits[:, true_id] - logits[:, false_id]


@torch.no_grad()
def forced_prefix_logit_diff(
    model: Any,
    inputs_or_state: dict[str, Any] | DecodeState,
    prefix_ids: Sequence[int] | Sequence[Sequence[int]],
    true_id: int,
    false_id: int,
    *,
    pad_id: int = 0,
) -> tuple[torch.Tensor, DecodeState]:
    """Probability-of-true logit after a forced prefix, optionally continuing a KV cache.

    ``inputs_or_state`` is either a processor batch (encoded with :func:`prefill`) or a
    :class:`DecodeState` to continue. ``prefix_ids`` is one token list for all rows or one per row.
    Returns ``(l_true - l_false, state)`` where ``state`` ends after the prefix (the label is *not*
    appended: call :func:`extend` with the label you want to condition on next).
    """
    if isinstance(inputs_or_state, DecodeState):
        state = inputs_or_state
        batch = state.attention_mask.shape[0]
    else:
        state = None
        batch = inputs_or_state["input_ids"].shape[0]
    if (
        len(prefix_ids)
        and isinstance(prefix_ids[0], int | torch.Tensor)
        and not isinstance(prefix_ids[0], list)
    ):
        rows = [list(map(int, prefix_ids))] * batch
    else:
        rows = [list(map(int, r)) for r in prefix_ids]  # type: ignore[arg-type]
    if state is None:
        # Append the prefix to the prompt tokens and encode both in one pass.
        state = prefill(model, _append_tokens(inputs_or_state, rows, pad_id))  # type: ignore[arg-type]
    else:
        state = extend(model, state, rows, pad_id=pad_id)
    return true_false_logit_diff(state.last_logits, true_id, false_id), state


def _append_tokens(inputs: dict[str, Any], rows: list[list[int]], pad_id: int) -> dict[str, Any]:
    """Append per-row tokens to a left-padded batch, re-padding on the left."""
    ids, mask = inputs["input_ids"], inputs.get("attention_mask")
    mask = torch.ones_like(ids) if mask is None else mask
    mm = inputs.get("mm_token_type_ids")
    mm = torch.zeros_like(ids, dtype=torch.int) if mm is None else mm
    id_rows, mm_rows = [], []
    for i, extra in enumerate(rows):
        keep = mask[i].bool()
        id_rows.append(ids[i][keep].tolist() + extra)
        mm_rows.append(mm[i][keep].tolist() + [0] * len(extra))
    new_ids, new_mask = left_pad(id_rows, pad_id, dtype=ids.dtype)
    new_mm, _ = left_pad(mm_rows, 0, dtype=mm.dtype)
    out = dict(inputs)
    out.update(input_ids=new_ids, attention_mask=new_mask.to(mask.dtype), mm_token_type_ids=new_mm)
    return out


# --------------------------------------------------------------------------------------------------
# Constrained JSON-string generation (listing reasons, review rationales)
# --------------------------------------------------------------------------------------------------
def json_string_safe(text: str) -> bool:
    """Whether ``text`` may appear verbatim inside a JSON string written without escapes.

    No ``"``, no ``\\``, and printable only: ``str.isprintable`` is False for every Unicode category C
    character (controls such as newline, CR and tab, format characters, surrogates, private use,
    unassigned) and for every separator but the ASCII space. This is the union of the two rules the
    listing scorer (category C) and the teacher (``isprintable``) applied before they shared it.
    """
    return '"' not in text and "\\" not in text and text.isprintable()


def _byte_values() -> dict[str, int]:
    """The byte-level BPE alphabet (GPT-2's ``bytes_to_unicode``, used by Qwen): character → byte."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _token_bytes(tokenizer: Any, n_tok: int) -> list[bytes | None] | None:
    """The raw bytes of every token of a byte-level BPE tokenizer (``None`` for tokens outside the byte
    alphabet: added tokens), or ``None`` when the tokenizer is not byte-level (no byte view exists)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if type(getattr(backend, "decoder", None)).__name__ != "ByteLevel":
        return None
    table = _byte_values()
    out: list[bytes | None] = []
    for piece in tokenizer.convert_ids_to_tokens(list(range(n_tok))):
        try:
            out.append(bytes(table[c] for c in piece) if piece else None)
        except KeyError:
            out.append(None)
    return out


def _utf8_split(data: bytes) -> tuple[str, bytes] | None:
    """``(text, pending)``: the complete characters of ``data`` and the bytes of an unfinished last one
    (a valid prefix), or ``None`` when ``data`` is not valid UTF-8 so far (a stray continuation byte, an
    invalid lead...)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(data, final=False)
    except UnicodeDecodeError:
        return None
    return text, decoder.getstate()[0]


@dataclass(frozen=True)
class _ReasonVocab:
    forbidden: torch.Tensor  # bool (vocab,): never allowed inside the string (from a clean state)
    closing: torch.Tensor  # bool (vocab,): ends the string (closing quote, optionally followed by "}")
    stop: torch.Tensor  # bool (vocab,): end-of-turn tokens, also end the string
    texts: tuple[str, ...]  # decoded text of every token id
    # Byte-level tokenizers only (else None / empty): the bytes of each token, the tokens that leave an
    # unfinished character behind, and the tokens starting with a continuation byte (the only ones that
    # can finish a character another token started).
    token_bytes: tuple[bytes | None, ...] | None = None
    opens: torch.Tensor | None = None
    continuations: tuple[int, ...] = ()
    pending_masks: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def step_mask(self, pending: bytes, *, first: bool, last: bool) -> torch.Tensor:
        """Forbidden tokens (bool, vocab) for a row whose string so far ends with the unfinished
        character ``pending`` (``b""``: a clean end); ``first``: the string may not end yet; ``last``:
        the token must leave the string valid UTF-8 (no unfinished character)."""
        if pending:
            forbidden, opens = self._pending(pending)
        else:
            forbidden, opens = self.forbidden, self.opens
            if first:
                forbidden = forbidden | self.closing | self.stop
        if last and opens is not None:
            forbidden = forbidden | opens
        return forbidden

    def _pending(self, pending: bytes) -> tuple[torch.Tensor, torch.Tensor]:
        cached = self.pending_masks.get(pending)
        if cached is not None:
            return cached
        forbidden = torch.ones_like(self.forbidden)  # closing and end-of-turn tokens included
        opens = torch.zeros_like(self.forbidden)
        assert self.token_bytes is not None
        for i in self.continuations:
            split = _utf8_split(pending + self.token_bytes[i])  # type: ignore[operator]
            if split is not None and json_string_safe(split[0]):
                forbidden[i] = False
                opens[i] = bool(split[1])
        self.pending_masks[pending] = (forbidden, opens)
        return forbidden, opens

    def after(self, pending: bytes, token: int) -> bytes:
        """The unfinished character after appending ``token`` to a string ending with ``pending``."""
        if self.token_bytes is None or self.token_bytes[token] is None:
            return b""
        split = _utf8_split(pending + self.token_bytes[token])  # type: ignore[operator]
        return b"" if split is None else split[1]


def _reason_vocab(tokenizer: Any, vocab_size: int) -> _ReasonVocab:
    key = ("_spamguard_reason_vocab", vocab_size)
    cached = getattr(tokenizer, "_spamguard_cache", {}).get(key)
    if cached is not None:
        return cached
    n_tok = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(min(n_tok, vocab_size))], skip_special_tokens=False)
    texts = list(texts) + [""] * (vocab_size - len(texts))
    raw = _token_bytes(tokenizer, min(n_tok, vocab_size))
    # Special tokens and every added token (special or not: <think>, tool-call markers...) are markup.
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special |= {int(i) for i in (getattr(tokenizer, "added_tokens_decoder", {}) or {})}
    stop_ids = {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    stop_ids |= {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    stop_ids = {i for i in stop_ids if isinstance(i, int) and 0 <= i < vocab_size}
    forbidden = torch.zeros(vocab_size, dtype=torch.bool)
    closing = torch.zeros(vocab_size, dtype=torch.bool)
    stop = torch.zeros(vocab_size, dtype=torch.bool)
    opens = torch.zeros(vocab_size, dtype=torch.bool)
    continuations: list[int] = []
    for i, text in enumerate(texts):
        if i >= n_tok:
            forbidden[i] = True  # padded embedding rows past the tokenizer
            continue
        if i in stop_ids:
            stop[i] = True
            continue
        if i in special or text == "":
            forbidden[i] = True
            continue
        pending = b""
        if raw is not None:
            # A byte-level token is a byte string, not always whole characters: judged on its complete
            # characters; one that ends inside a character "opens" it, one starting inside a character
            # can only follow a token that opened one (see _ReasonVocab.step_mask).
            if raw[i] is None:
                forbidden[i] = True
                continue
            if raw[i][:1] and 0x80 <= raw[i][0] <= 0xBF:
                continuations.append(i)
            split = _utf8_split(raw[i])
            if split is None:
                forbidden[i] = True
                continue
            text, pending = split
        elif "\ufffd" in text:
            forbidden[i] = True  # a piece of a character (byte fallback): would decode as U+FFFD
            continue
        head, quote, tail = text.partition('"')
        if not json_string_safe(head):
            forbidden[i] = True
        elif quote:
            if set(tail) <= set(" }") and not pending:
                closing[i] = True
            else:
                forbidden[i] = True
        opens[i] = bool(pending)
    result = _ReasonVocab(
        forbidden,
        closing,
        stop,
        tuple(texts),
        token_bytes=None if raw is None else tuple(raw) + (None,) * (vocab_size - len(raw)),
        opens=opens,
        continuations=tuple(continuations),
    )
    try:
        cache = getattr(tokenizer, "_spamguard_cache", None)
        if cache is None:
            cache = {}
            object.__setattr__(tokenizer, "_spamguard_cache", cache)
        cache[key] = result
    except (AttributeError, TypeError):  # pragma: no cover - exotic tokenizer objects
        pass
    return result


class ReasonLogitsProcessor(LogitsProcessor):
    """Masks every token that would break the JSON string being generated (see the module docstring).

    With ``min_tokens``, closing and end-of-turn tokens are also forbidden for the first steps. With
    ``max_new_tokens`` (the ``generate`` call's), the last token must leave valid UTF-8. Usable with
    ``model.generate`` (``logits_processor=[...]``; the generated part starts at ``prompt_len``);
    :func:`generate_reasons` applies the same rule on the KV-cache walk.
    """

    def __init__(
        self,
        tokenizer: Any,
        vocab_size: int | None = None,
        *,
        min_tokens: int = 0,
        prompt_len: int = 0,
        max_new_tokens: int | None = None,
    ):
        self.vocab = _reason_vocab(tokenizer, vocab_size or len(tokenizer))
        self.min_tokens = min_tokens
        self.prompt_len = prompt_len
        self.max_new_tokens = max_new_tokens

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_len if input_ids is not None else self.min_tokens
        last = self.max_new_tokens is not None and step == self.max_new_tokens - 1
        rows = []
        for i in range(scores.shape[0]):
            pending = b""
            if input_ids is not None and self.vocab.token_bytes is not None:
                for token in input_ids[i, self.prompt_len :].tolist():
                    pending = self.vocab.after(pending, token)
            mask = self.vocab.step_mask(pending, first=False, last=last)
            if step < self.min_tokens:
                mask = mask | self.vocab.closing | self.vocab.stop
            rows.append(mask)
        mask = torch.stack(rows).to(scores.device)
        return scores.masked_fill(mask[:, : scores.shape[-1]], float("-inf"))


@torch.no_grad()
def generate_reasons(
    model: Any,
    state: DecodeState,
    tokenizer: Any,
    *,
    max_new_tokens: int = 48,
    pad_id: int = 0,
) -> list[str]:
    """Greedy, constrained decoding of one JSON string per row, continuing ``state`` (which ends after
    the opening quote). At least one token is generated; a row ends at its closing quote, at an
    end-of-turn token or after ``max_new_tokens``. Each string is decoded as a whole and is valid UTF-8
    by construction: a byte-level token that starts a multi-byte character can only be followed by
    tokens that finish it, and the last token may not leave one unfinished (no U+FFFD). Returns the raw
    strings (callers clean them with :func:`hf_spamguard.verdict.clean_reason`)."""
    vocab = _reason_vocab(tokenizer, state.last_logits.shape[-1])
    batch, width = state.last_logits.shape
    device = state.last_logits.device
    generated: list[list[int]] = [[] for _ in range(batch)]
    clean = [0] * batch  # length of the longest prefix of generated[i] that ends on a whole character
    pending = [b""] * batch
    tails = [""] * batch
    done = [False] * batch
    masks: dict[tuple[bytes, bool, bool], torch.Tensor] = {}
    for step in range(max_new_tokens):
        first, last = step == 0, step == max_new_tokens - 1
        rows = []
        for i in range(batch):
            key = (pending[i], first, last)
            if key not in masks:
                masks[key] = vocab.step_mask(*key[:1], first=first, last=last)[:width].to(device)
            rows.append(masks[key])
        scores = state.last_logits.masked_fill(torch.stack(rows), float("-inf"))
        next_ids = scores.argmax(dim=-1).tolist()
        possible = torch.isfinite(scores).any(dim=-1).tolist()
        feed: list[list[int]] = []
        for i, tok in enumerate(next_ids):
            if done[i]:
                feed.append([])
                continue
            if not possible[i]:  # no token finishes the character: end the string before it
                done[i] = True
            elif not pending[i] and bool(vocab.closing[tok]):
                tails[i] = vocab.texts[tok].partition('"')[0]
                done[i] = True
            elif not pending[i] and bool(vocab.stop[tok]):
                done[i] = True
            else:
                generated[i].append(tok)
                pending[i] = vocab.after(pending[i], tok)
                if not pending[i]:
                    clean[i] = len(generated[i])
            feed.append([] if done[i] else [tok])
        if all(done) or last:
            break
        state = extend(model, state, feed, pad_id=pad_id)
    return [tokenizer.decode(g[:n]) + t for g, n, t in zip(generated, clean, tails, strict=True)]
