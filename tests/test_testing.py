"""The tiny offline Qwen3-VL: real architecture, real processor, real chat format, loads like a Hub model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import hf_spamguard  # noqa: F401 - registers the processor and the pipeline task
from hf_spamguard.prompts import build_messages, format_answer, message_images


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir)


def test_config_is_consistent(tiny_model_dir: Path) -> None:
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    text, vision = cfg["text_config"], cfg["vision_config"]
    assert vision["out_hidden_size"] == text["hidden_size"]
    assert sum(text["rope_parameters"]["mrope_section"]) == text["head_dim"] // 2
    # One LLM token per 32x32 px, as in the real Qwen3-VL.
    assert vision["patch_size"] * vision["spatial_merge_size"] == 32


def test_loads_with_auto_classes(tiny_model_dir: Path, processor) -> None:
    from transformers import AutoModelForImageTextToText

    from hf_spamguard.modeling import SpamGuardQwen3VLProcessor

    # Without the registration AutoProcessor silently returns only the tokenizer.
    assert isinstance(processor, SpamGuardQwen3VLProcessor)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    tok = processor.tokenizer
    for special in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"):
        assert tok.convert_tokens_to_ids(special) != tok.unk_token_id
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")


def test_image_costs_one_token_per_32px(processor) -> None:
    messages = build_messages("red dress", Image.new("RGB", (64, 96), "red"))
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text], images=message_images(messages), return_tensors="pt")
    n_image_tokens = int((enc["input_ids"] == processor.image_token_id).sum())
    assert n_image_tokens == (64 // 32) * (96 // 32)


def test_answer_pieces_are_single_tokens(processor) -> None:
    tok = processor.tokenizer
    ids_true = tok('{"is_spam": true', add_special_tokens=False)["input_ids"]
    ids_false = tok('{"is_spam": false', add_special_tokens=False)["input_ids"]
    assert ids_true[:-1] == ids_false[:-1]
    assert tok.decode(ids_true[-1:]).strip() == "true"
    assert tok.decode(ids_false[-1:]).strip() == "false"


def test_chat_template_marks_assistant_tokens(processor) -> None:
    """TRL's assistant_only_loss relies on {% generation %}: exactly the answer (+ <|im_end|>) is marked."""
    answer = {"is_spam": True, "reason": "lists unrelated brands"}
    messages = build_messages("Nike tee. tags: adidas puma", None, answer=answer)
    out = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0]
    marked = processor.tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert marked == format_answer(True, "lists unrelated brands") + "<|im_end|>"


def test_same_seed_same_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    from hf_spamguard.testing import build_tiny_qwen3_vl

    other = build_tiny_qwen3_vl(tmp_path / "again", seed=0)
    a, b = load_file(tiny_model_dir / "model.safetensors"), load_file(other / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tiny_model_dir / "tokenizer.json").read_text() == (other / "tokenizer.json").read_text()
