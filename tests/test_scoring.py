"""Scoring from logits: label tokens, KV-cache walking, temperature fitting, constrained reasons."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from hf_spamguard import decoding, scoring
from hf_spamguard.prompts import ANSWER_PREFIX, build_messages, message_images


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    from hf_spamguard.modeling import load_model, load_processor

    return load_model(tiny_model_dir, device="cpu"), load_processor(tiny_model_dir)


def _encode(processor, items):
    texts, images = [], []
    for text, image in items:
        messages = build_messages(text, image)
        texts.append(processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        images += message_images(messages)
    return processor(
        text=texts, images=images or None, return_tensors="pt", padding=True, padding_side="left"
    )


ITEMS = [
    ("Nike tee. tags: adidas puma gucci prada", Image.new("RGB", (96, 64), "red")),
    ("a plain summer dress, worn once, a longer description than the others", None),
    ("x", Image.new("RGB", (200, 300), "blue")),
]


def test_label_tokens_match_training_tokenisation(tiny) -> None:
    """Scoring feeds prompt + prefix_ids + label: exactly the tokens training sees for the answer."""
    _, processor = tiny
    tok = processor.tokenizer
    lt = scoring.label_tokens(tok)
    assert tok.decode([lt.true_id]).strip() == "true" and tok.decode([lt.false_id]).strip() == "false"
    answer = {"is_spam": True, "reason": "r"}
    full = processor.apply_chat_template(build_messages("d", None, answer=answer), tokenize=False)
    prompt = processor.apply_chat_template(
        build_messages("d", None), tokenize=False, add_generation_prompt=True
    )
    full_ids = tok(full, add_special_tokens=False)["input_ids"]
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    expected = prompt_ids + list(lt.prefix_ids) + [lt.true_id, *lt.continuation_ids[True]]
    assert full_ids[: len(expected)] == expected


def test_prefix_scoring_equals_plain_forward_and_batching_is_exact(tiny) -> None:
    model, processor = tiny
    lt = scoring.label_tokens(processor.tokenizer)
    batched, _ = decoding.forced_prefix_logit_diff(
        model, _encode(processor, ITEMS), lt.prefix_ids, lt.true_id, lt.false_id
    )
    for i, item in enumerate(ITEMS):
        single, _ = decoding.forced_prefix_logit_diff(
            model, _encode(processor, [item]), lt.prefix_ids, lt.true_id, lt.false_id
        )
        # Independent reference: the model's own forward over the unpadded text + the prefix as text.
        messages = build_messages(*item)
        text = (
            processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            + ANSWER_PREFIX
        )
        enc = processor(text=[text.rstrip()], images=message_images(messages) or None, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits[0, -1]
        reference = float(logits[lt.true_id] - logits[lt.false_id])
        assert float(single[0]) == pytest.approx(reference, abs=1e-5)
        assert float(batched[i]) == pytest.approx(reference, abs=1e-5)


def test_encode_listings_is_the_plain_left_padded_processor_batch(tiny) -> None:
    """The pipeline and the training evaluation both encode through encode_listings: it must equal the
    processor run on the rendered prompts (left padded, same photo pixels), and honour the PromptConfig."""
    from hf_spamguard.prompts import PromptConfig

    _, processor = tiny
    texts, images = zip(*ITEMS, strict=True)
    got = scoring.encode_listings(processor, texts, images)
    ref = _encode(processor, ITEMS)
    assert set(got) == set(ref)
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], atol=0, rtol=0, msg=key)
    mask = got["attention_mask"]
    assert bool(mask[:, -1].all()) and not bool(mask[:, 0].all())  # left padding
    small = scoring.encode_listings(processor, texts, images, PromptConfig(max_pixels=32 * 32))
    assert small["pixel_values"].shape[0] < got["pixel_values"].shape[0]  # the photo budget applies
    with pytest.raises(ValueError):
        scoring.encode_listings(processor, texts, images[:1])


def test_continuing_the_cache_equals_a_fresh_pass(tiny) -> None:
    """Per-label teacher scoring walks one cache: the result must equal encoding everything at once."""
    model, processor = tiny
    tok = processor.tokenizer
    lt = scoring.label_tokens(tok)
    second = tok(', "other": ', add_special_tokens=False)["input_ids"]
    enc = _encode(processor, ITEMS)
    _, state = decoding.forced_prefix_logit_diff(model, enc, lt.prefix_ids, lt.true_id, lt.false_id)
    chained, _ = decoding.forced_prefix_logit_diff(
        model,
        state,
        [[lt.true_id, *second], [lt.false_id, *second], [lt.true_id, *second]],
        lt.true_id,
        lt.false_id,
    )
    rows = [
        [*lt.prefix_ids, lt.true_id, *second],
        [*lt.prefix_ids, lt.false_id, *second],
        [*lt.prefix_ids, lt.true_id, *second],
    ]
    fresh, _ = decoding.forced_prefix_logit_diff(model, enc, rows, lt.true_id, lt.false_id)
    torch.testing.assert_close(chained, fresh, atol=1e-5, rtol=0)


def test_reasons_continue_the_cache_like_generate(tiny) -> None:
    model, processor = tiny
    tok = processor.tokenizer
    lt = scoring.label_tokens(tok)
    item = ITEMS[0]
    out = scoring.score_batch(model, tok, _encode(processor, [item]), max_reason_tokens=12, tokens=lt)
    is_spam = out["verdict"][0]["is_spam"]
    # Reference: re-encode prompt + forced answer start and let model.generate decode greedily.
    messages = build_messages(*item)
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text], images=message_images(messages), return_tensors="pt")
    forced = torch.tensor(
        [[*lt.prefix_ids, lt.true_id if is_spam else lt.false_id, *lt.continuation_ids[is_spam]]]
    )
    ids = torch.cat([enc["input_ids"], forced], dim=1)
    enc.update(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        mm_token_type_ids=torch.cat(
            [enc["mm_token_type_ids"], torch.zeros_like(forced, dtype=enc["mm_token_type_ids"].dtype)], 1
        ),
    )
    proc = decoding.ReasonLogitsProcessor(
        tok, model.config.text_config.vocab_size, min_tokens=1, prompt_len=ids.shape[1], max_new_tokens=12
    )
    gen = model.generate(**enc, max_new_tokens=12, do_sample=False, logits_processor=[proc])
    expected = tok.decode(gen[0, ids.shape[1] :])
    expected = expected.split('"')[0]
    from hf_spamguard.verdict import clean_reason

    assert out["reason"][0] == clean_reason(expected)


def test_reason_vocabulary_mask(tiny) -> None:
    model, processor = tiny
    tok = processor.tokenizer
    proc = decoding.ReasonLogitsProcessor(tok, model.config.text_config.vocab_size)
    texts = proc.vocab.texts
    allowed = ~proc.vocab.forbidden
    for i in torch.nonzero(allowed).flatten().tolist():
        head, quote, tail = texts[i].partition('"')
        assert "\\" not in head and "\n" not in head and "\r" not in head
        assert not quote or (proc.vocab.closing[i] and set(tail) <= set(" }"))
    assert proc.vocab.closing.any() and proc.vocab.stop.any()
    # Special tokens (image pads, <|im_start|>) can never appear inside the reason.
    assert proc.vocab.forbidden[tok.convert_tokens_to_ids("<|image_pad|>")]
    assert proc.vocab.forbidden[tok.convert_tokens_to_ids("<|im_start|>")]
    scores = torch.zeros(1, model.config.text_config.vocab_size)
    masked = proc(torch.zeros(1, 0, dtype=torch.long), scores)
    assert torch.isinf(masked[0, proc.vocab.forbidden]).all() and torch.isfinite(masked[0, allowed]).all()


def test_one_json_string_rule_for_listing_reasons_and_teacher_rationales(tiny) -> None:
    """The listing scorer and the review teacher share one token rule: the stricter union of the two
    they had (no Unicode category C character, and printable: no separator but the ASCII space)."""
    import unicodedata

    model, processor = tiny
    vocab = decoding.ReasonLogitsProcessor(processor.tokenizer, model.config.text_config.vocab_size).vocab
    for i in torch.nonzero(~vocab.forbidden & ~vocab.stop).flatten().tolist():
        head = vocab.texts[i].partition('"')[0]
        assert head.isprintable() and not any(unicodedata.category(c).startswith("C") for c in head)
    assert decoding.json_string_safe("plain text, café 5 stars")
    for bad in (
        'a "quote"',
        "back\\slash",
        "new\nline",
        "cr\r",
        "tab\t",
        "nbsp\u00a0",
        "zw\u200b",
        "ls\u2028",
    ):
        assert not decoding.json_string_safe(bad), repr(bad)


def test_reason_false_skips_generation_and_keeps_scores(tiny) -> None:
    model, processor = tiny
    enc = _encode(processor, ITEMS)
    with_reason = scoring.score_batch(model, processor.tokenizer, enc, max_reason_tokens=8)
    without = scoring.score_batch(model, processor.tokenizer, enc, reason=False)
    assert without["reason"] == ["", "", ""]
    assert without["confidence"] == pytest.approx(with_reason["confidence"], abs=1e-9)
    for d, c in zip(without["logit_diff"], without["confidence"], strict=True):
        assert c == pytest.approx(1 / (1 + math.exp(-d)), abs=1e-9)


def test_temperature_scales_the_logit() -> None:
    assert float(scoring.apply_temperature(2.0, 2.0)) == pytest.approx(1 / (1 + math.exp(-1.0)))
    with pytest.raises(ValueError):
        scoring.apply_temperature(1.0, 0.0)


def test_fit_temperature_recovers_the_true_temperature() -> None:
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(20_000, generator=gen, dtype=torch.float64) * 6
    true_t = 2.5
    y = (torch.rand(20_000, generator=gen, dtype=torch.float64) < torch.sigmoid(d / true_t)).long()
    assert scoring.fit_temperature(d.tolist(), y.tolist()) == pytest.approx(true_t, rel=0.08)
    # Over-confident logits need T > 1, under-confident ones T < 1.
    assert scoring.fit_temperature((d * 3).tolist(), y.tolist()) > 5
    assert scoring.fit_temperature((d / 3).tolist(), y.tolist()) < 1.2


def test_fit_temperature_edge_cases() -> None:
    assert scoring.fit_temperature([1.0], [1]) == 1.0
    assert scoring.fit_temperature([1.0, 2.0, 3.0], [1, 1, 1]) == 1.0
    with pytest.raises(ValueError, match="labels"):
        scoring.fit_temperature([1.0, 2.0], [1])


def test_reasons_are_whole_utf8_characters(tiny) -> None:
    """The tiny byte-level BPE has tokens that are single bytes of a multi-byte character; decoded one
    by one (or ended half-way) they gave U+FFFD in nearly every reason of the untrained model. A token
    that starts a character may now only be followed by tokens that finish it, and the last token may
    not leave one unfinished."""
    model, processor = tiny
    tok = processor.tokenizer
    items = [(f"listing {i}: nike adidas tags y2k {i * 7}", None) for i in range(12)]
    items += [("café crème brûlée ünïcödé 😀 日本語", None), *ITEMS]
    for max_tokens in (48, 7, 2, 1):
        out = scoring.score_batch(model, tok, _encode(processor, items), max_reason_tokens=max_tokens)
        assert not [r for r in out["reason"] if "\ufffd" in r], max_tokens
    vocab = decoding.ReasonLogitsProcessor(tok, model.config.text_config.vocab_size).vocab
    assert vocab.token_bytes is not None and vocab.continuations
    lead = next(i for i, b in enumerate(vocab.token_bytes) if b and len(b) == 1 and 0xC2 <= b[0] <= 0xDF)
    # From a clean state no continuation byte may come; after a lead byte only continuations may.
    clean = vocab.step_mask(b"", first=False, last=False)
    assert clean[list(vocab.continuations)].all() and not clean[lead]
    after_lead = vocab.step_mask(vocab.token_bytes[lead], first=False, last=False)
    allowed = torch.nonzero(~after_lead).flatten().tolist()
    assert allowed and set(allowed) <= set(vocab.continuations)
    assert after_lead[vocab.closing].all() and after_lead[vocab.stop].all()  # no closing mid-character
    assert vocab.step_mask(b"", first=False, last=True)[lead]  # the last token cannot open a character
