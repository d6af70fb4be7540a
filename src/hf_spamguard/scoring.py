"""Verdicts from a causal VLM's logits: forced JSON prefix, true/false probabilities, constrained reasons.

How a listing is scored (ShieldGemma-style):

1. **One forward pass** over the prompt plus the forced answer prefix ``{"is_spam": ``. The logits of
   the next token give ``l_true`` and ``l_false``; the confidence is the probability of ``true``
   renormalised over the two, ``sigmoid((l_true - l_false) / T)`` with a temperature ``T`` fitted on
   validation data (:func:`fit_temperature`). The model never types the confidence.
2. Optionally the **reason**: the label token and ``, "reason": "`` are appended to the *same KV cache*
   (the prompt is not encoded again) and the reason is decoded greedily under
   :class:`ReasonLogitsProcessor`, which forbids anything that would break a JSON string (quotes other
   than the closing one, backslashes, control characters, newlines, special tokens).
3. The verdict is built in Python (:func:`hf_spamguard.verdict.make_verdict`), so it is valid JSON
   whatever the model emits.

The lower-level pieces (:func:`prefill`, :func:`extend`, :func:`true_false_logit_diff`,
:func:`forced_prefix_logit_diff`) work for any forced prefix and any pair of label tokens, e.g.
per-label teacher scoring of review policies, which walks one KV cache through
``{"ads": <l1>, "irrelevant": <l2>, ...``.
"""

from __future__ import annotations

import inspect
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from transformers import LogitsProcessor

from hf_spamguard.prompts import ANSWER_PREFIX, REASON_PREFIX, build_messages, message_images
from hf_spamguard.verdict import make_verdict

__all__ = [
    "DecodeState",
    "LabelTokens",
    "ReasonLogitsProcessor",
    "apply_temperature",
    "encode_listings",
    "encode_prompt_batch",
    "extend",
    "fit_temperature",
    "forced_prefix_logit_diff",
    "generate_reasons",
    "label_tokens",
    "listing_prompt",
    "prefill",
    "score_batch",
    "true_false_logit_diff",
]


# --------------------------------------------------------------------------------------------------
# Label tokens
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelTokens:
    """How a tokenizer splits ``<prefix><true|false><continuation>``.

    ``prefix_ids`` are the tokens of the forced prefix exactly as they appear in the full answer (a BPE
    glues the space of ``{"is_spam": `` to the label, so tokenising the prefix alone would differ from
    training); ``true_id`` / ``false_id`` are the first tokens where the two answers differ;
    ``continuation_ids[label]`` are the tokens after the label up to the end of ``continuation``.
    """

    prefix_ids: tuple[int, ...]
    true_id: int
    false_id: int
    continuation_ids: dict[bool, tuple[int, ...]]


def label_tokens(
    tokenizer: Any,
    prefix: str = ANSWER_PREFIX,
    continuation: str = REASON_PREFIX,
    true_text: str = "true",
    false_text: str = "false",
) -> LabelTokens:
    """Find the label tokens of ``prefix + true_text|false_text + continuation`` for ``tokenizer``."""
    enc_t = tokenizer(prefix + true_text + continuation, add_special_tokens=False)["input_ids"]
    enc_f = tokenizer(prefix + false_text + continuation, add_special_tokens=False)["input_ids"]
    k = 0
    while k < min(len(enc_t), len(enc_f)) and enc_t[k] == enc_f[k]:
        k += 1
    if k >= min(len(enc_t), len(enc_f)):
        raise ValueError(f"tokenizer does not separate {true_text!r} from {false_text!r} after {prefix!r}")
    # Each label token must carry the start of its label (and not, say, end the prefix as well).
    for ids, text in ((enc_t, true_text), (enc_f, false_text)):
        piece = tokenizer.decode([ids[k]]).strip()
        if not piece or not text.startswith(piece[:1]):
            raise ValueError(f"unexpected tokenisation of {text!r} after {prefix!r}: label token {piece!r}")
    return LabelTokens(
        prefix_ids=tuple(enc_t[:k]),
        true_id=int(enc_t[k]),
        false_id=int(enc_f[k]),
        continuation_ids={True: tuple(enc_t[k + 1 :]), False: tuple(enc_f[k + 1 :])},
    )


# --------------------------------------------------------------------------------------------------
# Encoding listings into a model batch
# --------------------------------------------------------------------------------------------------
# The one place that turns listings into the tensors the scoring pass reads: the ``listing-spam``
# pipeline (preprocess → listing_prompt, _forward → encode_prompt_batch) and the training evaluation
# (encode_listings) both go through here, so the scores logged while training are the scores served.
def listing_prompt(
    processor: Any, description: Any, image: Any = None, *, prompt_config: Any = None
) -> tuple[str, list[Any]]:
    """The rendered inference prompt (chat template + generation prompt) and the prepared photos of one
    listing, built by :func:`hf_spamguard.prompts.build_messages` with the processor's tokenizer (so the
    description's token budget applies exactly as in training)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    messages = build_messages(description, image, config=prompt_config, tokenizer=tokenizer)
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt, message_images(messages)


def encode_prompt_batch(processor: Any, prompts: Sequence[str], images: Sequence[Sequence[Any]]) -> Any:
    """A left-padded ``BatchFeature`` of rendered prompts (``images[i]``: the photos of ``prompts[i]``).

    Left padding puts every row's last prompt token in the last column, where the forced answer prefix
    is appended (:func:`forced_prefix_logit_diff`). ``add_special_tokens=False``: the chat template
    already holds every special token (a tokenizer that adds a BOS would otherwise add a second one).
    """
    flat_images = [img for row in images for img in row]
    return processor(
        text=list(prompts),
        images=flat_images or None,
        padding=True,
        padding_side="left",
        return_tensors="pt",
        add_special_tokens=False,
    )


def encode_listings(
    processor: Any, descriptions: Sequence[Any], images: Sequence[Any], prompt_config: Any = None
) -> Any:
    """A left-padded ``BatchFeature`` for listings (``images[i]``: PIL | path | URL | bytes | None),
    ready for :func:`score_batch`. Equals :func:`listing_prompt` per row then :func:`encode_prompt_batch`."""
    prompts, row_images = [], []
    for description, image in zip(descriptions, images, strict=True):
        prompt, imgs = listing_prompt(processor, description, image, prompt_config=prompt_config)
        prompts.append(prompt)
        row_images.append(imgs)
    return encode_prompt_batch(processor, prompts, row_images)


# --------------------------------------------------------------------------------------------------
# KV-cache walking
# --------------------------------------------------------------------------------------------------
@dataclass
class DecodeState:
    """A batch part-way through decoding: the KV cache and where each row continues.

    ``last_logits`` (float32, ``(batch, vocab)``) are the logits of the next token of every row.
    ``text_pos`` / ``rope_pos`` are the next 1-D text position and the next M-RoPE position per row
    (M-RoPE positions run ahead of text positions after an image).
    """

    cache: Any
    attention_mask: torch.Tensor
    text_pos: torch.Tensor
    rope_pos: torch.Tensor
    last_logits: torch.Tensor


def _rope_module(model: Any) -> Any:
    cached = getattr(model, "_spamguard_rope_module", None)
    if cached is not None:
        return cached
    for module in model.modules():
        if hasattr(module, "get_rope_index") and not isinstance(module, type(model)):
            found = module
            break
    else:
        found = model if hasattr(model, "get_rope_index") else None
    if found is None:
        raise TypeError(f"{type(model).__name__} has no get_rope_index: not a Qwen-VL style model")
    object.__setattr__(model, "_spamguard_rope_module", found)
    return found


def _cache_kwarg(model: Any) -> str:
    # transformers 5.x renamed past_key_values -> cache (the old name still works until 5.40 with a
    # warning); the exported pipeline code must run on both.
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _model_device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _model_dtype(model: Any) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _forward(model: Any, input_ids, attention_mask, position_ids, cache, **extra) -> tuple[torch.Tensor, Any]:
    kwargs = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": position_ids,
        "use_cache": True,
        "logits_to_keep": 1,
        _cache_kwarg(model): cache,
        **extra,
    }
    out = model(**kwargs)
    new_cache = getattr(out, "cache", None)
    if new_cache is None:
        new_cache = getattr(out, "past_key_values", None)
    return out.logits[:, -1, :].float(), new_cache


@torch.no_grad()
def prefill(model: Any, inputs: dict[str, Any]) -> DecodeState:
    """Encode a left-padded batch (processor output: input_ids, attention_mask, optional pixel_values,
    image_grid_thw, mm_token_type_ids) in one forward pass and return the state after its last token.

    Positions are computed explicitly from the attention mask (text) and the image grids (M-RoPE), so a
    row gets the same positions whatever padding the batch adds: batched equals unbatched.
    """
    device = _model_device(model)
    input_ids = inputs["input_ids"].to(device)
    attention_mask = inputs.get("attention_mask")
    attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)
    mm = inputs.get("mm_token_type_ids")
    mm = torch.zeros_like(input_ids, dtype=torch.int) if mm is None else mm.to(device)
    grid = inputs.get("image_grid_thw")
    grid = grid.to(device) if grid is not None else None
    rope3d, _ = _rope_module(model).get_rope_index(
        input_ids, mm_token_type_ids=mm, image_grid_thw=grid, attention_mask=attention_mask
    )
    text = (attention_mask.long().cumsum(-1) - 1).clamp(min=0) * attention_mask.long()
    position_ids = torch.cat([text[None], rope3d.to(text.dtype)], dim=0)
    extra: dict[str, Any] = {}
    if inputs.get("pixel_values") is not None:
        extra["pixel_values"] = inputs["pixel_values"].to(device, _model_dtype(model))
        extra["image_grid_thw"] = grid
        extra["mm_token_type_ids"] = mm
    logits, cache = _forward(model, input_ids, attention_mask, position_ids, None, **extra)
    rope_masked = rope3d.masked_fill(attention_mask[None] == 0, -1)
    return DecodeState(
        cache=cache,
        attention_mask=attention_mask,
        text_pos=attention_mask.long().sum(-1),
        rope_pos=rope_masked.amax(dim=(0, 2)).long() + 1,
        last_logits=logits,
    )


@torch.no_grad()
def extend(model: Any, state: DecodeState, tokens: Sequence[Sequence[int]], pad_id: int = 0) -> DecodeState:
    """Append ``tokens[i]`` (any length, may be empty) to row ``i`` of ``state`` in one forward pass.

    Ragged rows are left-padded inside the new chunk with attention 0, so every row continues exactly
    where it stopped. Rows with no new tokens keep their ``last_logits``.
    """
    batch = state.attention_mask.shape[0]
    if len(tokens) != batch:
        raise ValueError(f"extend: got {len(tokens)} token lists for a batch of {batch}")
    width = max((len(t) for t in tokens), default=0)
    if width == 0:
        return state
    device = state.attention_mask.device
    ids = torch.full((batch, width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((batch, width), dtype=state.attention_mask.dtype, device=device)
    offs = torch.zeros((batch, width), dtype=torch.long, device=device)
    lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long, device=device)
    for i, row in enumerate(tokens):
        if row:
            ids[i, width - len(row) :] = torch.tensor(list(row), dtype=torch.long, device=device)
            mask[i, width - len(row) :] = 1
            offs[i, width - len(row) :] = torch.arange(len(row), device=device)
    text = (state.text_pos[:, None] + offs) * mask.long()
    rope = (state.rope_pos[:, None] + offs) * mask.long()
    position_ids = torch.stack([text, rope, rope, rope], dim=0)
    full_mask = torch.cat([state.attention_mask, mask], dim=1)
    logits, cache = _forward(model, ids, full_mask, position_ids, state.cache)
    keep = lengths == 0
    if keep.any():
        logits = torch.where(keep[:, None], state.last_logits, logits)
    return replace(
        state,
        cache=cache,
        attention_mask=full_mask,
        text_pos=state.text_pos + lengths,
        rope_pos=state.rope_pos + lengths,
        last_logits=logits,
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
    seqs = []
    for i, extra in enumerate(rows):
        keep = mask[i].bool()
        seqs.append((ids[i][keep].tolist() + extra, mm[i][keep].tolist() + [0] * len(extra)))
    width = max(len(s) for s, _ in seqs)
    new_ids = torch.full((len(seqs), width), pad_id, dtype=ids.dtype)
    new_mask = torch.zeros((len(seqs), width), dtype=mask.dtype)
    new_mm = torch.zeros((len(seqs), width), dtype=mm.dtype)
    for i, (s, m) in enumerate(seqs):
        new_ids[i, width - len(s) :] = torch.tensor(s, dtype=ids.dtype)
        new_mask[i, width - len(s) :] = 1
        new_mm[i, width - len(s) :] = torch.tensor(m, dtype=mm.dtype)
    out = dict(inputs)
    out.update(input_ids=new_ids, attention_mask=new_mask, mm_token_type_ids=new_mm)
    return out


# --------------------------------------------------------------------------------------------------
# Temperature
# --------------------------------------------------------------------------------------------------
def apply_temperature(logit_diff: torch.Tensor | float, temperature: float = 1.0) -> torch.Tensor:
    """Calibrated P(true): ``sigmoid(logit_diff / temperature)``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.sigmoid(torch.as_tensor(logit_diff, dtype=torch.float64) / float(temperature))


def fit_temperature(
    logit_diffs: Sequence[float] | Any,
    labels: Sequence[int] | Any,
    *,
    min_t: float = 0.05,
    max_t: float = 20.0,
) -> float:
    """Temperature ``T`` minimising the NLL of ``labels`` (1 = spam/true) under ``sigmoid(d / T)``.

    One-dimensional and convex in ``1/T``: solved by a bracketed golden-section search on ``log T``
    (no scipy). Returns 1.0 for fewer than two examples or a single class.
    """
    d = torch.as_tensor(list(map(float, logit_diffs)), dtype=torch.float64)
    y = torch.as_tensor(list(map(float, labels)), dtype=torch.float64)
    if d.shape != y.shape:
        raise ValueError(f"fit_temperature: {d.numel()} logit differences but {y.numel()} labels")
    if d.numel() < 2 or y.min() == y.max() or not torch.isfinite(d).all():
        return 1.0

    def nll(log_t: float) -> float:
        z = d / math.exp(log_t)
        # log(1 + e^-z) for y=1, log(1 + e^z) for y=0, computed stably.
        return float(
            (torch.nn.functional.softplus(-z) * y + torch.nn.functional.softplus(z) * (1 - y)).mean()
        )

    lo, hi = math.log(min_t), math.log(max_t)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(math.exp((lo + hi) / 2))


# --------------------------------------------------------------------------------------------------
# Constrained reason generation
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ReasonVocab:
    forbidden: torch.Tensor  # bool (vocab,): never allowed inside the reason
    closing: torch.Tensor  # bool (vocab,): ends the string (closing quote, optionally followed by "}")
    stop: torch.Tensor  # bool (vocab,): end-of-turn tokens, also end the reason
    texts: tuple[str, ...]  # decoded text of every token id


def _reason_vocab(tokenizer: Any, vocab_size: int) -> _ReasonVocab:
    key = ("_spamguard_reason_vocab", vocab_size)
    cached = getattr(tokenizer, "_spamguard_cache", {}).get(key)
    if cached is not None:
        return cached
    n_tok = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(min(n_tok, vocab_size))], skip_special_tokens=False)
    texts = list(texts) + [""] * (vocab_size - len(texts))
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    special |= {int(i) for i, tok in added.items() if getattr(tok, "special", True)}
    stop_ids = {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    stop_ids |= {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    stop_ids = {i for i in stop_ids if isinstance(i, int) and 0 <= i < vocab_size}
    forbidden = torch.zeros(vocab_size, dtype=torch.bool)
    closing = torch.zeros(vocab_size, dtype=torch.bool)
    stop = torch.zeros(vocab_size, dtype=torch.bool)
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
        head, quote, tail = text.partition('"')
        bad_head = "\\" in head or any(unicodedata.category(ch).startswith("C") for ch in head)
        if bad_head:
            forbidden[i] = True
        elif quote:
            if set(tail) <= set(" }"):
                closing[i] = True
            else:
                forbidden[i] = True
    result = _ReasonVocab(forbidden, closing, stop, tuple(texts))
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
    """Masks every token that would break the JSON string of the reason.

    Forbidden: tokens with a backslash, a control character or newline, special tokens, and tokens with
    a ``"`` anywhere but as the closing quote (optionally followed by ``}``/spaces). With
    ``min_tokens``, closing and end-of-turn tokens are also forbidden for the first steps.
    Usable with ``model.generate`` (``logits_processor=[...]``) as well as by :func:`generate_reasons`.
    """

    def __init__(
        self, tokenizer: Any, vocab_size: int | None = None, *, min_tokens: int = 0, prompt_len: int = 0
    ):
        self.vocab = _reason_vocab(tokenizer, vocab_size or len(tokenizer))
        self.min_tokens = min_tokens
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = self.vocab.forbidden.to(scores.device)
        step = input_ids.shape[1] - self.prompt_len if input_ids is not None else self.min_tokens
        if step < self.min_tokens:
            mask = mask | self.vocab.closing.to(scores.device) | self.vocab.stop.to(scores.device)
        return scores.masked_fill(mask[: scores.shape[-1]], float("-inf"))


@torch.no_grad()
def generate_reasons(
    model: Any,
    state: DecodeState,
    tokenizer: Any,
    *,
    max_new_tokens: int = 48,
    pad_id: int = 0,
) -> list[str]:
    """Greedy, constrained decoding of the reason strings, continuing ``state`` (after the opening quote)."""
    vocab = _reason_vocab(tokenizer, state.last_logits.shape[-1])
    batch = state.last_logits.shape[0]
    device = state.last_logits.device
    forbidden = vocab.forbidden.to(device)
    ends = (vocab.closing | vocab.stop).to(device)
    generated: list[list[int]] = [[] for _ in range(batch)]
    tails = [""] * batch
    done = [False] * batch
    for step in range(max_new_tokens):
        mask = forbidden | ends if step == 0 else forbidden
        scores = state.last_logits.masked_fill(mask[None, : state.last_logits.shape[-1]], float("-inf"))
        next_ids = scores.argmax(dim=-1).tolist()
        feed: list[list[int]] = []
        for i, tok in enumerate(next_ids):
            if done[i]:
                feed.append([])
                continue
            if bool(vocab.closing[tok]):
                tails[i] = vocab.texts[tok].partition('"')[0]
                done[i] = True
            elif bool(vocab.stop[tok]):
                done[i] = True
            else:
                generated[i].append(tok)
            feed.append([] if done[i] else [tok])
        if all(done) or step == max_new_tokens - 1:
            break
        state = extend(model, state, feed, pad_id=pad_id)
    return [tokenizer.decode(g) + t for g, t in zip(generated, tails, strict=True)]


# --------------------------------------------------------------------------------------------------
# Verdicts for a batch
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def score_batch(
    model: Any,
    tokenizer: Any,
    inputs: dict[str, Any],
    *,
    temperature: float = 1.0,
    reason: bool = True,
    max_reason_tokens: int = 48,
    tokens: LabelTokens | None = None,
) -> dict[str, list]:
    """Score a processor batch (prompts rendered with ``add_generation_prompt=True``, left padded).

    Returns ``{"logit_diff": [...], "confidence": [...], "reason": [...], "verdict": [...]}`` with one
    entry per row; ``verdict`` is the schema-valid dict (no ``decision``: the policy is applied by the
    caller). With ``reason=False`` no generation runs and reasons are ``""``.
    """
    tokens = tokens or label_tokens(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    diff, state = forced_prefix_logit_diff(
        model, inputs, list(tokens.prefix_ids), tokens.true_id, tokens.false_id, pad_id=pad_id
    )
    conf = apply_temperature(diff, temperature)
    is_spam = [bool(c >= 0.5) for c in conf.tolist()]
    reasons = [""] * len(is_spam)
    if reason and max_reason_tokens > 0:
        follow = [[tokens.true_id if s else tokens.false_id, *tokens.continuation_ids[s]] for s in is_spam]
        state = extend(model, state, follow, pad_id=pad_id)
        reasons = generate_reasons(model, state, tokenizer, max_new_tokens=max_reason_tokens, pad_id=pad_id)
    verdicts = [
        make_verdict(c, r, is_spam=s) for c, r, s in zip(conf.tolist(), reasons, is_spam, strict=True)
    ]
    return {
        "logit_diff": diff.tolist(),
        "confidence": [v["confidence"] for v in verdicts],
        "reason": [v["reason"] for v in verdicts],
        "verdict": verdicts,
    }
