"""Image fetching throughput against a loopback HTTP server with artificial latency.

Serves N distinct JPEGs from a ThreadingHTTPServer on 127.0.0.1 that waits ``--latency`` seconds before
each answer (like a CDN far away), then measures

1. sequential fetch (``max_workers=1``) into an empty cache,
2. concurrent fetch (``--workers`` threads) into another empty cache,
3. cached rebuild: the same fetch again, all from the content-addressed cache,
4. the same at the ``build_dataset`` level: first build with ``fetch_images=True`` (empty image and
   dataset caches), a rebuild with a fresh dataset cache but the warm image cache, and a rebuild
   that hits the ``datasets`` Arrow cache.

Prints one table of images/s and ratios. Goals: concurrent >= 8x sequential; cached >= 20x first build.

    nice python benchmarks/images.py [--n 500] [--latency 0.05] [--workers 16]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from hf_spamguard.data import build_dataset
from hf_spamguard.data.images import fetch_images


def _make_images(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (128, 128), (i % 256, (i * 7) % 256, (i * 13) % 256)).save(buf, format="JPEG")
        out.append(buf.getvalue())
    return out


def _serve_forever(n: int, latency: float, port_queue: multiprocessing.Queue) -> None:
    images = _make_images(n)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            time.sleep(latency)
            try:
                body = images[int(self.path.rsplit("/", 1)[-1].split(".")[0])]
            except (ValueError, IndexError):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    port_queue.put(server.server_address[1])
    server.serve_forever()


def _serve(n: int, latency: float) -> tuple[multiprocessing.Process, str]:
    """Start the server in its own process, so that its Python threads do not compete with the
    fetcher's for one GIL (a real image CDN is another machine)."""
    port_queue: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_serve_forever, args=(n, latency, port_queue), daemon=True)
    proc.start()
    return proc, f"http://127.0.0.1:{port_queue.get(timeout=60)}"


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500, help="number of distinct images")
    parser.add_argument("--latency", type=float, default=0.05, help="server latency per request (s)")
    parser.add_argument("--workers", type=int, default=16, help="threads for the concurrent runs")
    args = parser.parse_args()

    server, base = _serve(args.n, args.latency)
    urls = [f"{base}/img/{i}.jpg" for i in range(args.n)]
    rows: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="spamguard-bench-") as tmp:
        root = Path(tmp)

        def fetch(cache: str, workers: int) -> None:
            results = fetch_images(urls, root / cache, max_workers=workers, progress=False)
            failed = [r for r in results if not r.ok]
            assert not failed, failed[:3]

        rows.append(("fetch, sequential (empty cache)", 1, _timed(lambda: fetch("seq", 1))[0]))
        rows.append(
            ("fetch, concurrent (empty cache)", args.workers, _timed(lambda: fetch("conc", args.workers))[0])
        )
        rows.append(("fetch, cached rebuild", args.workers, _timed(lambda: fetch("conc", args.workers))[0]))

        tsv = root / "train.tsv"
        header = "\tproduct_id\timage_url\tdescription\tyes_count\tno_count\tlabel\n"
        tsv.write_text(
            header
            + "".join(
                f"{i}\tp{i}\t{u}\tlisting {i}\t{3 * (i % 2)}\t{3 * (1 - i % 2)}\t{i % 2}\n"
                for i, u in enumerate(urls)
            ),
            encoding="utf-8",
        )

        def build(cache: str) -> None:
            dd = build_dataset(
                tsv,
                fetch_images=True,
                validation_size=0,
                cache_dir=root / cache,
                image_cache_dir=root / "img",
                max_workers=args.workers,
                progress=False,
            )
            assert dd.build_report.n_images == args.n, dd.build_report.summary()

        rows.append(("build_dataset, first build", args.workers, _timed(lambda: build("ds1"))[0]))
        rows.append(("build_dataset, images cached", args.workers, _timed(lambda: build("ds2"))[0]))
        rows.append(("build_dataset, Arrow cache hit", args.workers, _timed(lambda: build("ds2"))[0]))
    server.terminate()
    server.join()

    seq = rows[0][2]
    print(f"\n{args.n} images, {args.latency * 1000:.0f} ms server latency, loopback HTTP\n")
    print(f"| {'run':<32} | workers | seconds | images/s | vs sequential | vs first build |")
    print(f"| {'-' * 32} | ------: | ------: | -------: | ------------: | -------------: |")
    for i, (name, workers, secs) in enumerate(rows):
        first = rows[1][2] if i < 3 else rows[3][2]
        print(
            f"| {name:<32} | {workers:>7} | {secs:>7.2f} | {args.n / secs:>8.0f} | {seq / secs:>12.1f}x "
            f"| {first / secs:>13.1f}x |"
        )
    conc, cached = seq / rows[1][2], rows[1][2] / rows[2][2]
    print(
        f"\ngoals: concurrent >= 8x sequential: {conc:.1f}x {'OK' if conc >= 8 else 'MISSED'}; "
        f"cached rebuild >= 20x first build: {cached:.1f}x {'OK' if cached >= 20 else 'MISSED'} "
        f"(build_dataset level: {rows[3][2] / rows[4][2]:.1f}x)"
    )


if __name__ == "__main__":
    main()
