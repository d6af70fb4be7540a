"""Scoring speed and memory of the baseline vs the seed's TF-IDF + LR, at 10k / 100k / 1M listings.

Each (model, N) runs in its own subprocess so that peak RSS is measured cleanly (``ru_maxrss``).
Rows are synthetic listings (the deterministic demo generator, cycled with a per-row suffix).
The seed scores the seed's way (one ``predict_proba`` on the whole list, built before the clock
starts); the baseline streams the rows from a generator through ``score_chunks`` on all cores, so its
memory should stay flat in N (the generator's own time is measured alone and taken off its clock).

    nice python benchmarks/baseline_speed.py [--sizes 10000 100000 1000000] [--n-jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POOL = 3000


def _pool() -> list[str]:
    from hf_spamguard.data.synthetic import generate_demo_listings

    return [r["description"] for r in generate_demo_listings(n=POOL, seed=7)]


def _rows(n: int, pool: list[str]):
    for i in range(n):
        yield f"{pool[i % POOL]} ref{i % 9973}"


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, n: int, model_dir: str, n_jobs: int) -> None:
    import numpy as np

    if kind == "seed":
        from skops.io import get_untrusted_types, load

        path = Path(model_dir) / "seed.skops"
        model = load(path, trusted=get_untrusted_types(file=path))
        model.predict_proba(["warm up"])  # imports and first-call costs are not throughput
        pool = _pool()
        before = _rss_mib()
        texts = list(_rows(n, pool))  # the seed scores a list held in memory
        start = time.perf_counter()
        p = model.predict_proba(texts)[:, 1]
        total = float(p.sum())
    else:
        from hf_spamguard.baseline import BaselineClassifier

        model = BaselineClassifier.from_pretrained(model_dir)
        pool = _pool()  # built before the clock starts, as for the seed
        # warm-up on full chunks: the thread pool and Arrow's allocator start before the clock
        model.predict_proba(pool[: 2 * 2048], n_jobs=n_jobs)
        # The seed's list is built before its clock starts; the baseline streams from a generator
        # instead (flat memory), so the generator's own time, measured alone, is taken off its clock.
        start = time.perf_counter()
        for _ in _rows(n, pool):
            pass
        generator_seconds = time.perf_counter() - start
        before = _rss_mib()
        start = time.perf_counter()
        total = 0.0
        for chunk in model.score_chunks(_rows(n, pool), chunk_size=2048, n_jobs=n_jobs):
            total += float(np.sum(chunk))
        start += generator_seconds
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"kind": kind, "n": n, "seconds": seconds, "peak_mib": peak, "before_mib": before, "sum": total}
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--n-jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "N", "MODEL_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2], args.n_jobs)
        return 0

    import skops.io as sio

    from hf_spamguard.baseline import BaselineClassifier, BaselineTrainingArguments
    from hf_spamguard.data.synthetic import generate_demo_listings
    from references import seed_reference_pipeline

    train = generate_demo_listings(n=1500, seed=3)
    texts = [r["description"] for r in train]
    y = [int(r["label"]) for r in train]
    with tempfile.TemporaryDirectory() as tmp:
        BaselineClassifier().fit(texts, y, BaselineTrainingArguments(Cs=(4.0,), cv=3)).save_pretrained(tmp)
        sio.dump(seed_reference_pipeline().fit(texts, y), Path(tmp) / "seed.skops")
        results = {}
        for n in args.sizes:
            for kind in ("seed", "baseline"):
                out = subprocess.run(
                    [sys.executable, __file__, "--n-jobs", str(args.n_jobs), "--child", kind, str(n), tmp],
                    capture_output=True,
                    text=True,
                )
                if out.returncode != 0:
                    print(out.stderr[-2000:], file=sys.stderr)
                    return 1
                res = json.loads(out.stdout.strip().splitlines()[-1])
                results[(kind, n)] = res
                print(
                    f"  {kind} n={n}: {n / res['seconds']:.0f} listings/s, peak {res['peak_mib']:.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        f"\nScoring throughput and peak RSS ({os.cpu_count()} cores visible, baseline n_jobs={args.n_jobs}; one run)\n"
    )
    print(
        "| rows | seed listings/s | baseline listings/s | speed-up | seed peak MiB (Δ) | baseline peak MiB (Δ) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        s, b = results[("seed", n)], results[("baseline", n)]
        print(
            f"| {n:,} | {n / s['seconds']:,.0f} | {n / b['seconds']:,.0f} | {s['seconds'] / b['seconds']:.2f}x | "
            f"{s['peak_mib']:.0f} (+{s['peak_mib'] - s['before_mib']:.0f}) | {b['peak_mib']:.0f} (+{b['peak_mib'] - b['before_mib']:.0f}) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
