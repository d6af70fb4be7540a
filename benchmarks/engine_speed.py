"""Listings per second of the two engines on the same listings, in one run: the ``listing-spam``
pipeline (transformers) and vLLM (:mod:`hf_spamguard.vllm_engine`).

    .venv-vllm/bin/python benchmarks/engine_speed.py                    # tiny model, CPU (~2 minutes)
    .venv-vllm/bin/python benchmarks/engine_speed.py --n 400 --batch-size 32
    python benchmarks/engine_speed.py --model-size 2b                   # on a GPU: Qwen3-VL-2B shape

Runs in an environment with vLLM (``scripts/vllm-cpu-env.sh DIR`` on CPU). The same N synthetic
listings are scored text-only and with their photos, with and without reasons, by both engines; each
engine is loaded before its clock starts (the engine start is reported apart). The table gives
listings/s, the ratio to the transformers engine and the largest confidence difference between the two
(the engines must agree to 1e-3). ``--model-size 2b`` builds a full-size Qwen3-VL-2B with random
weights from its config (no download; ``benchmarks/gpu_check.py``'s builder) and runs in bfloat16.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def listings(n: int, photos: bool, image_px: int) -> list[dict[str, Any]]:
    from hf_spamguard.data.synthetic import generate_demo_listings, render_demo_image

    rows = generate_demo_listings(n=max(n, 2), seed=0)[:n]
    return [
        {"text": r["description"], "image": render_demo_image(r, size=image_px) if photos else None}
        for r in rows
    ]


def build(work: Path, size: str) -> Path:
    if size == "tiny":
        from hf_spamguard.testing import build_tiny_qwen3_vl

        return build_tiny_qwen3_vl(work / "tiny")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch

    from gpu_check import build_model  # the Qwen3-VL-2B shape, random weights, from its config

    folder, _ = build_model(work, tiny=False, cuda=torch.cuda.is_available())
    return folder


def timed(score: Any, rows: list[dict[str, Any]], reason: bool) -> tuple[float, list[float]]:
    score(rows[:4], reason)  # warm-up: first-call allocations, compiled kernels
    started = time.perf_counter()
    verdicts = score(rows, reason)
    seconds = time.perf_counter() - started
    return len(rows) / seconds, [v["confidence"] for v in verdicts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="Listings per measurement.")
    parser.add_argument("--batch-size", type=int, default=8, help="The transformers pipeline's batch size.")
    parser.add_argument("--model-size", choices=("tiny", "2b"), default="tiny")
    parser.add_argument("--image-px", type=int, default=256, help="Side of the synthetic photos.")
    parser.add_argument("--max-reason-tokens", type=int, default=48)
    args = parser.parse_args(argv)

    from hf_spamguard.pipeline import load_pipeline
    from hf_spamguard.vllm_engine import VLLMListingScorer, check_vllm_installed

    check_vllm_installed()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build(Path(tmp), args.model_size)
        cases = [(photos, reason) for photos in (False, True) for reason in (False, True)]
        data = {photos: listings(args.n, photos, args.image_px) for photos in (False, True)}
        results: dict[tuple[str, bool, bool], tuple[float, list[float]]] = {}

        started = time.perf_counter()
        pipe = load_pipeline(model_dir, batch_size=args.batch_size)
        starts = {"transformers": time.perf_counter() - started}

        def transformers_score(rows: list[dict[str, Any]], reason: bool) -> list[dict[str, Any]]:
            return pipe(rows, reason=reason, max_reason_tokens=args.max_reason_tokens)

        for photos, reason in cases:
            results["transformers", photos, reason] = timed(transformers_score, data[photos], reason)
        pipe = None  # free it before vLLM starts

        started = time.perf_counter()
        with VLLMListingScorer(model_dir, max_reason_tokens=args.max_reason_tokens) as scorer:
            starts["vllm"] = time.perf_counter() - started
            for photos, reason in cases:
                results["vllm", photos, reason] = timed(
                    lambda r, s: scorer(r, reason=s), data[photos], reason
                )

    print(
        f"\n{args.model_size} model, {args.n} listings per row, transformers batch {args.batch_size}, "
        f"reasons up to {args.max_reason_tokens} tokens; engine start: transformers "
        f"{starts['transformers']:.1f} s, vLLM {starts['vllm']:.1f} s\n"
    )
    print(
        "| input | reasons | transformers listings/s | vLLM listings/s | vLLM vs transformers | max abs conf diff |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for photos, reason in cases:
        t_rate, t_conf = results["transformers", photos, reason]
        v_rate, v_conf = results["vllm", photos, reason]
        diff = max(abs(a - b) for a, b in zip(t_conf, v_conf, strict=True))
        print(
            f"| {'text + photo' if photos else 'text only'} | {'yes' if reason else 'no'} | {t_rate:,.1f} | "
            f"{v_rate:,.1f} | {v_rate / t_rate:.2f}x | {diff:.1e} |"
        )
    return 0


if __name__ == "__main__":  # vLLM may spawn processes: the entry point must be guarded
    raise SystemExit(main())
