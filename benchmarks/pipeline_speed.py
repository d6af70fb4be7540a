"""Speed and validity of the listing-spam pipeline against the seed's free-generation approach.

On the tiny offline Qwen3-VL (:func:`hf_spamguard.testing.build_tiny_qwen3_vl`) and N demo listings
(with their rendered photos where they have one), one run each of

1. **seed's way**: the same prompts, ``model.generate`` greedily up to 256 new tokens, ``json.loads`` of
   the answer and a ``"malformed"`` fallback verdict when it does not parse;
2. **pipeline, scoring only** (``reason=False``): one forward pass per batch, confidence from logits;
3. **pipeline with reasons** (``reason=True``, ``max_reason_tokens=48``): + constrained decoding on
   the same KV cache.

Prints items/s, the ratio to the seed's way and the valid-JSON rate (a verdict with exactly the schema's
keys and types). Goals: scoring-only >= 10x the seed's way; 100% valid.

Note: the tiny model is random, so the seed's way almost never emits ``<|im_end|>`` and runs to the
256-token cap; a trained model stops earlier, which narrows the gap for that column (the pipeline's cost
does not depend on what the model would have typed).

    nice python benchmarks/pipeline_speed.py [--n 200] [--batch-size 8] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from hf_spamguard.data.synthetic import generate_demo_listings, render_demo_image
from hf_spamguard.modeling import load_model, load_processor
from hf_spamguard.pipeline import load_pipeline
from hf_spamguard.prompts import build_messages, message_images
from hf_spamguard.testing import build_tiny_qwen3_vl
from hf_spamguard.verdict import VerdictError, validate_verdict


def _inputs(n: int) -> list[dict[str, Any]]:
    rows = generate_demo_listings(n=n, seed=0)
    return [
        {"text": r["description"], "image": render_demo_image(r) if r["has_image"] else None} for r in rows
    ]


def _is_valid(obj: Any) -> bool:
    try:
        validate_verdict(obj)
        return json.loads(json.dumps(obj)) == obj
    except (VerdictError, TypeError, ValueError):
        return False


def seed_way(
    model_dir: Path, inputs: list[dict[str, Any]], batch_size: int
) -> tuple[float, list[dict], float]:
    """Free generation + json.loads + "malformed" fallback. Returns (seconds, verdicts, mean new tokens)."""
    model, processor = load_model(model_dir, device="cpu"), load_processor(model_dir)
    tok = processor.tokenizer
    verdicts, new_tokens = [], []
    start = time.perf_counter()
    for i in range(0, len(inputs), batch_size):
        chunk = inputs[i : i + batch_size]
        messages = [build_messages(x["text"], x["image"], tokenizer=tok) for x in chunk]
        texts = [
            processor.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages
        ]
        images = [img for m in messages for img in message_images(m)]
        enc = processor(
            text=texts, images=images or None, return_tensors="pt", padding=True, padding_side="left"
        )
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=256, do_sample=False, pad_token_id=tok.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1] :]:
            text = tok.decode(row, skip_special_tokens=True)
            new_tokens.append(int((row != tok.pad_token_id).sum()))
            try:
                obj = json.loads(text)
                verdict = {
                    "is_spam": obj["is_spam"],
                    "confidence": obj["confidence"],
                    "reason": obj["reason"],
                }
            except (json.JSONDecodeError, KeyError, TypeError):
                verdict = {"is_spam": False, "confidence": 0.0, "reason": "malformed", "_malformed": True}
            verdicts.append(verdict)
    return time.perf_counter() - start, verdicts, sum(new_tokens) / max(1, len(new_tokens))


def pipeline_way(
    model_dir: Path, inputs: list[dict[str, Any]], batch_size: int, reason: bool
) -> tuple[float, list]:
    pipe = load_pipeline(model_dir, device="cpu")
    pipe(inputs[:batch_size], batch_size=batch_size, reason=reason)  # warm-up: vocab masks, allocator
    start = time.perf_counter()
    out = pipe(inputs, batch_size=batch_size, reason=reason, max_reason_tokens=48)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="number of listings")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--model", type=Path, default=None, help="model folder (default: build the tiny model)"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or build_tiny_qwen3_vl(Path(tmp) / "tiny")
        inputs = _inputs(args.n)
        n_img = sum(x["image"] is not None for x in inputs)
        print(
            f"{args.n} demo listings ({n_img} with a photo), batch size {args.batch_size}, CPU, {model_dir}"
        )
        seed_s, seed_out, seed_tokens = seed_way(model_dir, inputs, args.batch_size)
        fast_s, fast_out = pipeline_way(model_dir, inputs, args.batch_size, reason=False)
        full_s, full_out = pipeline_way(model_dir, inputs, args.batch_size, reason=True)

    def valid_rate(out: list[dict]) -> float:
        return 100.0 * sum(_is_valid(v) for v in out) / len(out)

    seed_valid = 100.0 * sum(not v.get("_malformed") and _is_valid(v) for v in seed_out) / len(seed_out)
    rows = [
        ("seed: generate <=256 tok + json.loads", seed_s, seed_valid),
        ("pipeline, scoring only (reason=False)", fast_s, valid_rate(fast_out)),
        ("pipeline, with reasons (48 tok max)", full_s, valid_rate(full_out)),
    ]
    print(f"seed's way generated {seed_tokens:.0f} new tokens per item on average\n")
    print(f"| {'method':<40} | {'seconds':>8} | {'items/s':>8} | {'vs seed':>8} | {'valid JSON':>10} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 12}|")
    for name, secs, valid in rows:
        print(f"| {name:<40} | {secs:8.2f} | {args.n / secs:8.1f} | {seed_s / secs:7.1f}x | {valid:9.1f}% |")
    ratio = seed_s / fast_s
    print(f"\ngoal scoring-only >= 10x seed: {'met' if ratio >= 10 else 'NOT met'} ({ratio:.1f}x)")


if __name__ == "__main__":
    main()
