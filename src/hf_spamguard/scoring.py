"""Listing verdicts from a causal VLM's logits: label tokens, encoding, temperature, ``score_batch``.

How a listing is scored (ShieldGemma-style):

1. **One forward pass** over the prompt plus the forced answer prefix ``{"is_spam": ``. The logits of
   the next token give ``l_true`` and ``l_false``; the confidence is the probability of ``true``
   renormalised over the two, ``sigmoid((l_true - l_false) / T)`` with a temperature ``T`` fitted on
   validation data (:func:`fit_temperature`). The model never types the confidence.
2. Optionally the **reason**: the label token and ``, "reason": "`` are appended to the *same KV cache*
   (the prompt is not encoded again) and the reason is decoded greedily under the JSON-string token
   rule of :mod:`hf_spamguard.decoding`, which forbids anything that would break a JSON string
   (quotes other than the closing one, backslashes, control characters, newlines, special tokens).
3. The verdict is built in Python (:func:`hf_spamguard.verdict.make_verdict`), so it is valid JSON
   whatever the model emits.

The KV-cache walk and the constrained generator (:func:`~hf_spamguard.decoding.prefill`,
:func:`~hf_spamguard.decoding.extend`, :func:`~hf_spamguard.decoding.forced_prefix_logit_diff`,
:func:`~hf_spamguard.decoding.generate_reasons`) live in :mod:`hf_spamguard.decoding`, shared with the
review teacher, which walks one KV cache through ``{"ads": <l1>, "irrelevant": <l2>, ...``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hf_spamguard.decoding import extend, forced_prefix_logit_diff, generate_reasons
from hf_spamguard.prompts import ANSWER_PREFIX, REASON_PREFIX, build_messages, message_images
from hf_spamguard.verdict import make_verdict

__all__ = [
    "FIT_TEMPERATURE_BOUNDS",
    "TEMPERATURE_RANGE",
    "JSON_STRING_REGEX",
    "LabelTokens",
    "ListingSettings",
    "listing_verdict",
    "apply_temperature",
    "check_temperature",
    "encode_listings",
    "encode_prompt_batch",
    "fit_temperature",
    "temperature_fit_note",
    "label_tokens",
    "listing_prompt",
    "score_batch",
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
    processor: Any,
    description: Any,
    image: Any = None,
    *,
    prompt_config: Any = None,
    load_image: Callable[[Any], Any] | None = None,
) -> tuple[str, list[Any]]:
    """The rendered inference prompt (chat template + generation prompt) and the prepared photos of one
    listing, built by :func:`hf_spamguard.prompts.build_messages` with the processor's tokenizer (so the
    description's token budget applies exactly as in training).

    Photos are opened with ``load_image``, by default :func:`hf_spamguard.data.images.load_image` (URLs
    fetched under its network policy: public addresses only)."""
    if load_image is None:
        from hf_spamguard.data.images import load_image
    tokenizer = getattr(processor, "tokenizer", processor)
    messages = build_messages(
        description, image, config=prompt_config, tokenizer=tokenizer, load_image=load_image
    )
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt, message_images(messages)


def encode_prompt_batch(processor: Any, prompts: Sequence[str], images: Sequence[Sequence[Any]]) -> Any:
    """A left-padded ``BatchFeature`` of rendered prompts (``images[i]``: the photos of ``prompts[i]``).

    Left padding puts every row's last prompt token in the last column, where the forced answer prefix
    is appended (:func:`~hf_spamguard.decoding.forced_prefix_logit_diff`). ``add_special_tokens=False``:
    the chat template already holds every special token (a tokenizer that adds a BOS would otherwise add
    a second one).
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
# A model folder's scoring settings, and the verdict built from a confidence
# --------------------------------------------------------------------------------------------------
@dataclass
class ListingSettings:
    """What a listing model folder says about scoring, read once by every engine (the ``listing-spam``
    pipeline, ``spamguard predict --engine vllm``): the prompt it was trained with, its temperature and
    its policy. A missing file means the default (PromptConfig(), T = 1, no policy)."""

    prompt_config: Any = None
    temperature: float = 1.0
    policy: Any = None  # hf_spamguard.policy.Thresholds | None

    @classmethod
    def load(cls, model_dir: Any) -> ListingSettings:
        """Read ``prompt_config.json``, ``calibration.json`` and ``policy.json`` of ``model_dir`` (``None``:
        the defaults). A bad temperature raises ``ValueError`` naming the file and field."""
        from pathlib import Path

        from hf_spamguard.files import CALIBRATION_FILE, POLICY_FILE, read_json
        from hf_spamguard.policy import Thresholds
        from hf_spamguard.prompts import PromptConfig

        if model_dir is None:
            return cls(PromptConfig(), 1.0, None)
        model_dir = Path(model_dir)
        settings = cls(PromptConfig.load(model_dir), 1.0, None)
        calib = read_json(model_dir / CALIBRATION_FILE)
        if calib is not None:
            where = f"{model_dir / CALIBRATION_FILE}, field 'temperature'"
            settings.temperature = check_temperature(calib.get("temperature"), where)
        if (model_dir / POLICY_FILE).is_file():
            settings.policy = Thresholds.load(model_dir)
        return settings


def listing_verdict(confidence: float, reason: str | None, policy: Any = None) -> dict[str, Any]:
    """The verdict of one listing: :func:`hf_spamguard.verdict.make_verdict` of the calibrated
    ``confidence`` and ``reason``, with the ``decision`` of ``policy`` (a ``Thresholds``; ``None`` or
    ``False``: no decision). Every engine ends here."""
    from hf_spamguard.policy import decide_one

    decision = decide_one(confidence, policy) if policy not in (None, False) else None
    return make_verdict(confidence, reason, decision=decision)


#: A JSON string's body and its closing quote, as a regular expression for engines that constrain
#: generation by a grammar (vLLM's structured outputs): at least one character, none of which would
#: need an escape (no quote, backslash, control character, line or paragraph separator). The transformers
#: engine applies the same rule token by token (:func:`hf_spamguard.decoding.json_string_safe`).
JSON_STRING_REGEX = r'[^"\\\x00-\x1f\x7f-\x9f\u2028\u2029]+"'


# --------------------------------------------------------------------------------------------------
# Temperature
# --------------------------------------------------------------------------------------------------
#: Temperatures accepted anywhere (calibration.json, per call, fits). Outside it a temperature is a
#: broken file rather than a calibration: T = inf (or 1e300) turns every listing into 0.5, T = 1e-300
#: every confidence into 0 or 1.
TEMPERATURE_RANGE: tuple[float, float] = (1e-3, 1e3)

#: The search interval of :func:`fit_temperature`. A fit that ends on one of its ends is reported as
#: such (:func:`temperature_fit_note`): the validation scores asked for something more extreme.
FIT_TEMPERATURE_BOUNDS: tuple[float, float] = (0.05, 20.0)


def check_temperature(value: Any, where: str = "temperature") -> float:
    """``value`` as a float if it is a real number (not a bool, not a string) within
    :data:`TEMPERATURE_RANGE`; otherwise ``ValueError`` ``"<where>: expected a finite number in
    [0.001, 1000], got <value>"`` (``where`` names the file and field, or the option)."""
    lo, hi = TEMPERATURE_RANGE
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    # numpy / torch scalars are numbers too (fit results); strings and bools are not.
    if not ok and hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(TypeError, ValueError):
            value = value.item()
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{where}: expected a finite number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def apply_temperature(logit_diff: torch.Tensor | float, temperature: float = 1.0) -> torch.Tensor:
    """Calibrated P(true): ``sigmoid(logit_diff / temperature)`` (``temperature`` checked by
    :func:`check_temperature`)."""
    temperature = check_temperature(temperature)
    return torch.sigmoid(torch.as_tensor(logit_diff, dtype=torch.float64) / temperature)


def temperature_fit_note(
    temperature: float, bounds: tuple[float, float] = FIT_TEMPERATURE_BOUNDS
) -> str | None:
    """A sentence for a fitted ``temperature`` that ended on a bound of the search (``None`` otherwise).

    The upper bound means the validation scores carry (almost) no signal the labels agree with: the
    fit flattens every confidence towards 0.5 (a random or untrained model, too few rows). The lower
    bound means the fit would sharpen the scores further still: logit differences far smaller than an
    informative model's (an untrained model), or validation rows separated perfectly.
    """
    lo, hi = bounds
    if math.isclose(temperature, hi, rel_tol=1e-6):
        return (
            f"the temperature fit hit its upper bound (T = {hi:g}): the validation scores carry almost no "
            "signal, so every confidence is squashed towards 0.5 (an untrained or random model, or too few "
            "validation rows)"
        )
    if math.isclose(temperature, lo, rel_tol=1e-6):
        return (
            f"the temperature fit hit its lower bound (T = {lo:g}): it would sharpen the scores further "
            "still (logit differences far smaller than an informative model's, as in an untrained model, or "
            "validation rows separated perfectly); the confidences are not reliable probabilities"
        )
    return None


def fit_temperature(
    logit_diffs: Sequence[float] | Any,
    labels: Sequence[int] | Any,
    *,
    min_t: float = FIT_TEMPERATURE_BOUNDS[0],
    max_t: float = FIT_TEMPERATURE_BOUNDS[1],
) -> float:
    """Temperature ``T`` minimising the NLL of ``labels`` (1 = spam/true) under ``sigmoid(d / T)``.

    One-dimensional and convex in ``1/T``: solved by a bracketed golden-section search on ``log T``
    (no scipy) within ``[min_t, max_t]`` (both inside :data:`TEMPERATURE_RANGE`; a result on a bound is
    worth saying: :func:`temperature_fit_note`). Returns 1.0 for fewer than two examples or a single
    class.
    """
    min_t = check_temperature(min_t, "fit_temperature: min_t")
    max_t = check_temperature(max_t, "fit_temperature: max_t")
    if not min_t < max_t:
        raise ValueError(f"fit_temperature: min_t ({min_t:g}) must be below max_t ({max_t:g})")
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
    return check_temperature(math.exp((lo + hi) / 2), "fit_temperature: result")


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
