"""A tiny Qwen3-VL built offline (config, random weights, locally trained tokenizer, processor).

Used by the tests, the benchmarks and the demo: it has the real architecture, the real chat format and
the real processor, only a few hundred thousand parameters, and is built in a few seconds without the Hub.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "build_tiny_qwen3_vl", "build_tiny_tokenizer"]

#: Qwen special tokens, in this order at ids 0.. (the Qwen3-VL config's token ids point at them).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|vision_pad|>",
)

# Qwen-style chat template (system/user/assistant, images as <|vision_start|><|image_pad|><|vision_end|>)
# with {% generation %} around the assistant content so TRL's assistant_only_loss can mask the prompt.
CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ render(message['content']) }}{{ '<|im_end|>' }}"
    "{% endgeneration %}{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}{{ render(message['content']) }}{{ '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

_BUILTIN_LISTINGS = (
    "Vintage Levi's 501 jeans, size 32, light wash, great condition.",
    "Nike Air Max 90 trainers UK 9, worn twice, box included.",
    "Zara floral midi dress size M, perfect for summer.",
    "Carhartt WIP hoodie black size L. Tags: nike adidas supreme stussy palace y2k vintage 90s",
    "Cute crop top. #zara #shein #prettylittlething #asos #hm #bershka #nike #adidas #y2k #grunge",
    "Dr Martens 1460 boots size 6, some scuffs on the toe.",
    "Handmade knitted cardigan, cream, one size. ignore: gucci prada balenciaga dior chanel",
    "Ralph Lauren polo shirt navy medium, slight fading.",
    "Brandy Melville tank top, white, never worn!! #brandy #urbanoutfitters #depop #aesthetic #vintage",
    "Patagonia fleece jacket in green, size S, very warm.",
)
_BUILTIN_REASONS = (
    "lists many unrelated brands after the item description",
    "hashtags name brands the item is not",
    "ordinary description of the item in the photo",
    "no keyword stuffing in the text",
)


def _corpus() -> list[str]:
    from hf_spamguard.data.synthetic import generate_demo_listings
    from hf_spamguard.prompts import (
        NOTE_CORRUPT_IMAGE,
        NOTE_NO_IMAGE,
        NOTE_TRUNCATED,
        SYSTEM_PROMPT,
        format_answer,
    )

    listings = [str(row.get("description", "")) for row in generate_demo_listings(n=300, seed=0)]
    listings += list(_BUILTIN_LISTINGS)
    lines = [SYSTEM_PROMPT, NOTE_NO_IMAGE, NOTE_CORRUPT_IMAGE, NOTE_TRUNCATED, "Listing description:"]
    lines += listings
    # Answers many times over, so that `{"`, `":`, ` true`, ` false`, `, "`, `"}` become single tokens.
    for i, reason in enumerate(_BUILTIN_REASONS * 25):
        lines.append(format_answer(i % 2 == 0, reason))
    return lines


def build_tiny_tokenizer(vocab_size: int = 3000):
    """A byte-level BPE with Qwen's pre-tokenizer and special tokens, trained on the demo listings."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # Qwen2's pre-tokenisation regex: digits split one by one, punctuation runs kept together.
    pattern = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768,
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_qwen3_vl(folder: str | os.PathLike, *, seed: int = 0) -> Path:
    """Build and ``save_pretrained`` a tiny random Qwen3-VL + tokenizer + processor into ``folder``.

    Text: hidden 64, 2 layers, 4 heads (head_dim 32, mrope_section [4, 6, 6] sums to head_dim / 2).
    Vision: depth 2, real Qwen3-VL patching (16 px patches, 2x2 merge: one token per 32x32 px), output
    size = text hidden size. Loads with ``AutoModelForImageTextToText``, ``AutoProcessor`` (after
    ``import hf_spamguard``) and ``pipeline("listing-spam", ...)``, and runs in vLLM (``--engine vllm``):
    head_dim 32 is the smallest its CPU attention takes, and the folder has the video processor config
    that vLLM's Qwen3-VL processor loads (no video is ever used).
    """
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from hf_spamguard.modeling import SpamGuardQwen3VLProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vocab_size = (len(tokenizer) + 63) // 64 * 64
    hidden = 64
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": hidden,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            # vLLM's CPU attention needs head_dim >= 32 (16 fails: "Unsupported CPU attention
            # configuration"), so both engines run this model.
            "head_dim": 32,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [4, 6, 6],
                "mrope_interleaved": True,
            },
            "pad_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "bos_token_id": None,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": hidden,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    config.eos_token_id = ids["<|im_end|>"]
    config.pad_token_id = ids["<|endoftext|>"]
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    model.save_pretrained(folder)

    image_processor = Qwen2VLImageProcessorPil(
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        # One 32x32 token minimum (the prompt builder already fits photos to its budget); the max is
        # only a safety net above any sensible PromptConfig.max_pixels.
        size={"shortest_edge": 32 * 32, "longest_edge": 1024 * 32 * 32},
    )
    processor = SpamGuardQwen3VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    processor.save_pretrained(folder)  # writes the video processor config too
    return folder
