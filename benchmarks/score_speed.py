"""Batch scoring speed and memory: `spamguard score` streaming vs the seed's way, in one run.

    nice python benchmarks/score_speed.py                       # 100k and 1M generated reviews
    nice python benchmarks/score_speed.py --repeat 3            # best of 3, interleaved (shared machine)
    nice python benchmarks/score_speed.py --rows 20000 100000   # quicker
    nice python benchmarks/score_speed.py --rows 100000 --ray-rows 100000 --chunk-size 5000   # + ray engine

The seed's way: load the whole file with pandas, ``TfidfVectorizer(max_features=10000,
stop_words="english")`` + logistic regression (one per label), transform and predict everything in
one go, write the result; its model is trained and loaded before its clock starts. `spamguard score`:
the distilled student (:mod:`hf_spamguard.reviews.distill`), streamed in chunks, Parquet written
incrementally, measured two ways: the real command (``spamguard score --model ... --input ... --out
... --no-progress --n-jobs N``) timed from its launch to its exit (start-up, imports, loading the
student, reading, scoring, writing, report: what a user waits for), and ``score_reviews()`` in a
worker with the student loaded before the clock (as the seed's model is). Both models are trained on
the same 20k teacher-labelled rows. Each method runs in its own process; peak memory is the largest
proportional set size (PSS: shared pages split between processes) of that process and its children,
sampled every 0.1 s; CPU s is the CPU time (user + system, all threads) of the timed part (of the
whole process for the real command). Output: a Markdown table with rows/s, rows/s per core used, CPU
seconds, peak MB and ratios. On a machine shared with other jobs, CPU s is the steadier figure: a
multi-threaded run gets only the cores the others leave it, a one-threaded seed loses little.
With ``--repeat R`` every method runs R times, the methods interleaved, and each keeps its fastest run.

The ray engine (`--engine ray`, at the sizes of ``--ray-rows``; needs the `ray` extra) runs on a local
cluster of all cores started by its subprocess before the clock starts (as the model is loaded before
it), so its time includes the actors' start and each one's copy of the student, and its peak memory
the whole cluster (raylet, object store...). Its reader is one process (the readers' rules are
sequential), so "reader alone" is the rate the ray engine cannot pass, however many cores it gets.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

LABELS = ("advertisement", "irrelevant", "rant_without_visit", "spam")


def _teacher_labels(n: int, path: Path) -> None:
    import numpy as np

    from hf_spamguard.reviews.synthetic import generate_reviews

    df = generate_reviews(n, seed=12345).drop(columns=["error"])
    rng = np.random.default_rng(0)
    for name in LABELS:
        truth = df.pop(f"true_{name}").to_numpy()
        df[f"p_{name}"] = np.clip(np.where(truth, 0.9, 0.08) + rng.normal(0, 0.05, n), 0.001, 0.999)
    df["status"] = "labelled"
    df.to_parquet(path)


# ----------------------------------------------------------------------------------------- workers


def worker_ours(args: argparse.Namespace) -> dict:
    from hf_spamguard.reviews.batch import score_reviews
    from hf_spamguard.reviews.student import load_student

    student = load_student(args.student)  # model set-up is not timed, as for the seed
    engine: dict = {"n_jobs": args.n_jobs}
    cores = (os.cpu_count() or 1) if args.n_jobs == -1 else args.n_jobs
    if args.engine == "ray":
        import ray

        # The cluster's start is set-up too (a real job joins a running cluster: --address auto).
        ray.init(include_dashboard=False, log_to_driver=False)
        cores = int(ray.cluster_resources()["CPU"])
        engine = {"engine": "ray", "concurrency": cores}
    t0, c0 = time.perf_counter(), time.process_time()
    seen, stop = _watch_parts(Path(args.out + ".parts"), t0)
    result = score_reviews(
        args.student,
        args.input,
        args.out,
        chunk_size=args.chunk_size,
        progress=False,
        student=student,
        **engine,
    )
    stop.set()
    out = {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "rows": result.rows}
    out["cores"] = cores
    # Steady state: the parts after the first, over the time after it. Parts arrive in bursts (several
    # workers finish together), so only with many parts does it mean anything: --chunk-size small enough.
    if len(seen) >= 10:
        first, last = min(seen.values()), max(seen.values())
        out.update(first_part_s=first, steady_rows_per_s=(len(seen) - 1) * args.chunk_size / (last - first))
    return out


def _watch_parts(folder: Path, t0: float) -> tuple[dict[str, float], threading.Event]:
    """When each part file first appears (seconds after ``t0``), sampled every 10 ms in a thread."""
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            now = time.perf_counter() - t0
            for f in folder.glob("part-*.parquet") if folder.is_dir() else ():
                seen.setdefault(f.name, now)
            time.sleep(0.01)

    threading.Thread(target=watch, daemon=True).start()
    return seen, stop


def worker_read(args: argparse.Namespace) -> dict:
    from hf_spamguard.reviews.data import iter_reviews

    t0, c0 = time.perf_counter(), time.process_time()
    rows = sum(len(chunk) for chunk in iter_reviews(args.input, chunk_size=args.chunk_size))
    return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "rows": rows, "cores": 1}


def worker_seed(args: argparse.Namespace) -> dict:
    import numpy as np
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train = pd.read_parquet(args.labels)
    vec = TfidfVectorizer(max_features=10000, stop_words="english")
    X = vec.fit_transform(train["text"].fillna(""))
    heads = [LogisticRegression(max_iter=1000).fit(X, (train[f"p_{n}"] >= 0.5).astype(int)) for n in LABELS]
    del train, X
    t0, c0 = time.perf_counter(), time.process_time()
    df = pd.read_csv(args.input)  # everything in memory at once, as the seed did
    X = vec.transform(df["text"].fillna(""))
    P = np.column_stack([h.predict_proba(X)[:, 1] for h in heads])
    out = pd.DataFrame({"id": df["id"].astype(str)})
    for j, n in enumerate(LABELS):
        out[f"p_{n}"] = P[:, j].astype("float32")
    out.to_parquet(args.out)
    return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "rows": len(df), "cores": 1}


# ----------------------------------------------------------------------------------------- driver


def _tree_pss(proc) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            info = p.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_measured(cmd: list[str], *, whole: bool = False) -> dict:
    """Run ``cmd`` and sample its peak memory. A worker reports its own timing (JSON, last line);
    ``whole``: ``cmd`` is the real ``spamguard score`` and its seconds are the process's, launch to exit
    (start-up, imports, loading the student, scoring, assembly and report)."""
    import resource

    import psutil

    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            try:
                peak = max(peak, _tree_pss(ps))
            except psutil.NoSuchProcess:
                return
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed with exit code {proc.returncode}")
    if whole:
        # "scored 1000000 rows in 2.6 s (...)": the CLI's own line
        line = next(x for x in out.splitlines() if x.startswith("scored "))
        jobs = int(cmd[cmd.index("--n-jobs") + 1])
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the process has been waited for
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        cores = jobs if jobs > 0 else os.cpu_count()
        result = {"seconds": seconds, "cpu": cpu, "rows": int(line.split()[1]), "cores": cores}
    else:
        result = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = peak / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--ray-rows",
        type=int,
        nargs="*",
        default=[],
        help="Also run the ray engine at these sizes (of --rows).",
    )
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path, default=None, help="Keep inputs here (default: a temp dir).")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Run every method this many times, interleaved, and keep each one's fastest run (a shared "
        "machine's load then hits them alike).",
    )
    parser.add_argument("--worker", choices=["ours", "seed", "read"], help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="local", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--student", help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    parser.add_argument("--n-jobs", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        workers = {"ours": worker_ours, "seed": worker_seed, "read": worker_read}
        print(json.dumps(workers[args.worker](args)))
        return

    from hf_spamguard.reviews.distill import DistillConfig, distill
    from hf_spamguard.reviews.synthetic import write_generated_reviews

    work = args.workdir or Path(tempfile.mkdtemp(prefix="score_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    labels = work / "teacher_labels.parquet"
    student = work / "student"
    if not labels.is_file():
        _teacher_labels(args.train_rows, labels)
    if not (student / "student.json").is_file():
        print(f"distilling the student on {args.train_rows:,} teacher-labelled rows...", file=sys.stderr)
        distill(DistillConfig(labels=str(labels), out=str(student), Cs=(1.0, 3.0), cv=2), progress=False)
    me = [sys.executable, os.path.abspath(__file__)]
    results = []
    for n in args.rows:
        src = work / f"reviews_{n}.csv"
        if not src.is_file():
            print(f"writing {n:,} generated reviews to {src}...", file=sys.stderr)
            write_generated_reviews(src, n=n, seed=1)
        size_mb = src.stat().st_size / 2**20
        cli = [str(Path(sys.executable).with_name("spamguard")), "score", "--model", str(student)]
        cli += ["--no-progress"]
        methods = [
            ("seed: pandas + TfidfVectorizer + LR, one go", ["--worker", "seed", "--labels", str(labels)]),
            ("`spamguard score` whole process, --n-jobs 1", [*cli, "--n-jobs", "1"]),
            ("`spamguard score` whole process, all cores", [*cli, "--n-jobs", "-1"]),
            (
                "score_reviews(), n_jobs=1 (student loaded before the clock)",
                ["--worker", "ours", "--student", str(student), "--n-jobs", "1"],
            ),
            (
                "score_reviews(), all cores (student loaded before the clock)",
                ["--worker", "ours", "--student", str(student), "--n-jobs", "-1"],
            ),
        ]
        if n in args.ray_rows:
            methods += [
                ("reader alone (no scoring; the ray engine's ceiling)", ["--worker", "read"]),
                (
                    "spamguard score --engine ray (local cluster, all cores)",
                    ["--worker", "ours", "--student", str(student), "--engine", "ray"],
                ),
            ]
        best: dict[str, dict] = {}
        for rep in range(args.repeat):
            for method, extra in methods:
                out = work / f"out_{n}.parquet"
                for stale in (out, out.with_suffix(".html")):
                    stale.unlink(missing_ok=True)
                whole = extra[0] != "--worker"
                cmd = [*(extra if whole else [*me, *extra]), "--input", str(src), "--out", str(out)]
                cmd += ["--chunk-size", str(args.chunk_size)]
                print(f"{n:,} rows: {method} (run {rep + 1})...", file=sys.stderr)
                r = run_measured(cmd, whole=whole)
                if method not in best or r["seconds"] < best[method]["seconds"]:
                    best[method] = r
        results += [{"rows": n, "file_mb": size_mb, "method": m, **best[m]} for m, _ in methods]
    print(
        f"\nBatch scoring, {os.cpu_count()} cores, generated reviews (CSV input, Parquet output), "
        f"best of {args.repeat} run(s) each\n"
    )
    print(
        "| rows | method | seconds | rows/s | rows/s per core | CPU s | peak MB | speed vs seed | CPU vs seed "
        "| memory vs seed |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        seed = next(s for s in results if s["rows"] == r["rows"] and s["method"].startswith("seed"))
        rate = r["rows"] / r["seconds"]
        seed_rate = seed["rows"] / seed["seconds"]
        print(
            f"| {r['rows']:,} | {r['method']} | {r['seconds']:.1f} | {rate:,.0f} | "
            f"{rate / r['cores']:,.0f} | {r['cpu']:.1f} | {r['peak_mb']:,.0f} | {rate / seed_rate:.2f}x | "
            f"{r['cpu'] / seed['cpu']:.2f}x | {r['peak_mb'] / seed['peak_mb']:.2f}x |"
        )
    steady = [r for r in results if "steady_rows_per_s" in r]
    if steady:
        print(
            "\nSteady state (start-up excluded: the parts after the first one, over the time after it; "
            "runs of 10 parts or more)\n"
        )
        print("| rows | method | first part after s | steady rows/s | steady rows/s per core |")
        print("| ---: | --- | ---: | ---: | ---: |")
        for r in steady:
            rate = r["steady_rows_per_s"]
            print(
                f"| {r['rows']:,} | {r['method']} | {r['first_part_s']:.1f} | {rate:,.0f} | "
                f"{rate / r['cores']:,.0f} |"
            )


if __name__ == "__main__":
    main()
