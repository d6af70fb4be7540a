"""Image fetching against a real threaded HTTP server on 127.0.0.1 (no mocks of the network)."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from hf_spamguard.data import images as images_mod
from hf_spamguard.data.images import ImageLoadError, fetch_image, fetch_images, load_image, verify_image_bytes


def _jpeg(colour: tuple[int, int, int] = (200, 30, 30), size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="JPEG")
    return buf.getvalue()


def _png(size: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (size, size), (0, 120, 200, 128)).save(buf, format="PNG")
    return buf.getvalue()


GOOD = _jpeg()
OTHER = _jpeg((20, 200, 20))
PNG = _png()


class _Handler(BaseHTTPRequestHandler):
    """Serves good, 404, flaky (500 then OK), always-500, slow, trickling, truncated, non-image, huge and
    redirecting responses. Every request is counted in ``server.hits``."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send(self, code: int, body: bytes, ctype: str = "image/jpeg", length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        server = self.server
        with server.lock:
            server.hits[self.path] += 1
            hits = server.hits[self.path]
        path = self.path
        if path.startswith("/good/"):
            self._send(200, GOOD)
        elif path.startswith("/same/"):  # the same bytes behind many URLs
            self._send(200, OTHER)
        elif path == "/png":
            self._send(200, PNG, "image/png")
        elif path == "/missing":
            self._send(404, b"not found", "text/plain")
        elif path.startswith("/flaky/"):
            if hits == 1:
                self._send(500, b"oops", "text/plain")
            else:
                self._send(200, GOOD)
        elif path == "/always500":
            self._send(503, b"down", "text/plain")
        elif path == "/slow":
            time.sleep(2.0)
            self._send(200, GOOD)
        elif path == "/trickle":  # headers at once, then a byte every 0.1 s
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            try:
                for i in range(40):
                    self.wfile.write(GOOD[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif path == "/truncated-image":  # a valid HTTP response carrying half a JPEG
            self._send(200, GOOD[: len(GOOD) // 2])
        elif path == "/truncated-body":  # the connection closes before Content-Length bytes arrived
            self._send(200, GOOD[:100], length=len(GOOD))
            self.close_connection = True
        elif path == "/not-image":
            self._send(200, b"<html><body>Item removed</body></html>", "text/html")
        elif path == "/huge-declared":
            self._send(200, b"x" * 10, length=50 * 1024 * 1024)
            self.close_connection = True
        elif path == "/huge-stream":  # no Content-Length: the size is only known while reading
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"\xff" * 16384)
            except OSError:
                pass
            self.close_connection = True
        elif path == "/redirect":
            self._redirect("/good/redirected.jpg")
        elif path == "/redirect-loop":
            self._redirect("/redirect-loop")
        elif path == "/redirect-file":
            self._redirect("file:///etc/passwd")
        else:
            self._send(404, b"?", "text/plain")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ThreadingHTTPServer]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.hits = Counter()
    httpd.lock = threading.Lock()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, httpd
    httpd.shutdown()
    httpd.server_close()


FAST = dict(timeout=0.5, retries=1, backoff=0.01, progress=False)


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.endswith((".tmp", ".part"))]


def test_fetch_mixed_responses(server, tmp_path: Path) -> None:
    base, httpd = server
    urls = [
        f"{base}/good/1.jpg",
        f"{base}/png",
        f"{base}/missing",
        f"{base}/not-image",
        f"{base}/truncated-image",
        f"{base}/redirect",
        f"{base}/redirect-file",
        f"{base}/redirect-loop",
        "file:///etc/passwd",
        "ftp://example.com/a.jpg",
        "not a url",
    ]
    results = fetch_images(urls, tmp_path, max_workers=4, **FAST)
    assert [r.url for r in results] == urls
    by_path = {r.url.removeprefix(base): r for r in results}
    assert by_path["/good/1.jpg"].ok and Path(by_path["/good/1.jpg"].path).read_bytes() == GOOD
    assert by_path["/png"].ok and Path(by_path["/png"].path).read_bytes() == PNG
    assert by_path["/redirect"].ok
    assert not by_path["/missing"].ok and "404" in by_path["/missing"].error
    assert by_path["/missing"].attempts == 1  # 4xx is final: no retry
    assert not by_path["/not-image"].ok and "not a valid image" in by_path["/not-image"].error
    assert not by_path["/truncated-image"].ok and "not a valid image" in by_path["/truncated-image"].error
    assert not by_path["/redirect-file"].ok and "file" in by_path["/redirect-file"].error
    assert not by_path["/redirect-loop"].ok
    for bad in ("file:///etc/passwd", "ftp://example.com/a.jpg", "not a url"):
        assert not by_path[bad].ok and "only http/https" in by_path[bad].error
    # Only good images are in the cache, and nothing half-written is left behind.
    objects = [p for p in (tmp_path / "objects").rglob("*") if p.is_file()]
    assert sorted(p.read_bytes() for p in objects) == sorted([GOOD, PNG])
    assert _no_temp_files(tmp_path)


def test_cache_hit_does_not_touch_the_network(server, tmp_path: Path) -> None:
    base, httpd = server
    urls = [f"{base}/good/cache-{i}.jpg" for i in range(5)]
    first = fetch_images(urls, tmp_path, max_workers=3, **FAST)
    assert all(r.ok and not r.from_cache for r in first)
    before = sum(httpd.hits[f"/good/cache-{i}.jpg"] for i in range(5))
    second = fetch_images(urls, tmp_path, max_workers=3, **FAST)
    assert all(r.ok and r.from_cache for r in second)
    assert [r.path for r in second] == [r.path for r in first]
    assert sum(httpd.hits[f"/good/cache-{i}.jpg"] for i in range(5)) == before == 5


def test_content_addressed_dedup_and_duplicate_urls(server, tmp_path: Path) -> None:
    base, httpd = server
    urls = [f"{base}/same/a.jpg", f"{base}/same/b.jpg", f"{base}/same/a.jpg"]
    results = fetch_images(urls, tmp_path, max_workers=2, **FAST)
    assert all(r.ok for r in results)
    assert len({r.path for r in results}) == 1  # one object for identical bytes
    assert len([p for p in (tmp_path / "objects").rglob("*") if p.is_file()]) == 1
    assert httpd.hits["/same/a.jpg"] == 1  # a URL listed twice is fetched once


def test_retries_5xx_then_gives_up(server, tmp_path: Path) -> None:
    base, httpd = server
    ok = fetch_image(f"{base}/flaky/x.jpg", tmp_path, timeout=1.0, retries=2, backoff=0.01)
    assert ok.ok and ok.attempts == 2 and httpd.hits["/flaky/x.jpg"] == 2
    bad = fetch_image(f"{base}/always500", tmp_path, timeout=1.0, retries=2, backoff=0.01)
    assert not bad.ok and bad.attempts == 3 and "503" in bad.error and "gave up" in bad.error
    assert httpd.hits["/always500"] == 3


def test_timeouts_slow_and_trickling_servers(server, tmp_path: Path) -> None:
    base, _ = server
    slow = fetch_image(f"{base}/slow", tmp_path, timeout=0.3, retries=1, backoff=0.01)
    assert not slow.ok and "timeout" in slow.error and slow.attempts == 2
    # Each byte arrives well within the socket timeout, but the whole body would take 4 s.
    trickle = fetch_image(f"{base}/trickle", tmp_path, timeout=0.5, retries=0)
    assert not trickle.ok and "timeout" in trickle.error
    assert _no_temp_files(tmp_path) and not (tmp_path / "objects").exists()


def test_truncated_body_and_max_bytes(server, tmp_path: Path) -> None:
    base, _ = server
    truncated = fetch_image(f"{base}/truncated-body", tmp_path, timeout=1.0, retries=0)
    assert not truncated.ok and "truncated" in truncated.error
    declared = fetch_image(f"{base}/huge-declared", tmp_path, max_bytes=1_000_000, retries=0)
    assert not declared.ok and "too large" in declared.error and "Content-Length" in declared.error
    streamed = fetch_image(f"{base}/huge-stream", tmp_path, max_bytes=100_000, retries=0)
    assert not streamed.ok and "too large" in streamed.error
    assert not (tmp_path / "objects").exists()


def test_decompression_bomb_limit() -> None:
    with pytest.raises(ImageLoadError, match="decompression-bomb limit"):
        verify_image_bytes(_jpeg(size=200), max_pixels=10_000)
    assert verify_image_bytes(_jpeg(size=50), max_pixels=10_000) == (50, 50)


def test_killed_write_leaves_no_partial_image(server, tmp_path: Path, monkeypatch) -> None:
    """Simulate a kill between writing the temp file and renaming it: nothing half-written may remain,
    and the next run fetches the image normally."""
    base, _ = server
    url = f"{base}/good/killed.jpg"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("hf_spamguard.atomic.os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        fetch_image(url, tmp_path, retries=0)
    monkeypatch.undo()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    again = fetch_image(url, tmp_path, retries=0)
    assert again.ok and not again.from_cache and Path(again.path).read_bytes() == GOOD


def test_concurrent_fetch_keeps_order(server, tmp_path: Path) -> None:
    base, _ = server
    urls = [f"{base}/good/many-{i}.jpg" for i in range(40)] + [f"{base}/missing"]
    results = fetch_images(urls, tmp_path, max_workers=8, **FAST)
    assert [r.url for r in results] == urls
    assert [r.ok for r in results] == [True] * 40 + [False]
    with pytest.raises(ValueError, match="max_workers"):
        fetch_images(urls, tmp_path, max_workers=0)


def test_load_image_sources(server, tmp_path: Path) -> None:
    base, _ = server
    assert load_image(None) is None and load_image("") is None
    pil = Image.new("L", (10, 12))
    assert load_image(pil).mode == "RGB" and load_image(pil).size == (10, 12)
    assert load_image(GOOD).size == (64, 64)
    path = tmp_path / "x.png"
    path.write_bytes(PNG)
    assert load_image(path).mode == "RGB"
    assert load_image(str(path)).size == (48, 48)
    assert load_image({"bytes": GOOD, "path": None}).size == (64, 64)
    assert load_image({"bytes": None, "path": str(path)}).size == (48, 48)
    assert load_image(f"{base}/good/load.jpg").size == (64, 64)
    cached = load_image(f"{base}/good/load-cached.jpg", cache_dir=tmp_path / "cache")
    assert cached.size == (64, 64) and (tmp_path / "cache" / "objects").is_dir()
    with pytest.raises(ImageLoadError, match="not a valid image"):
        load_image(b"definitely not an image")
    with pytest.raises(ImageLoadError, match="404"):
        load_image(f"{base}/missing")
    with pytest.raises(ImageLoadError, match="no such image file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="http/https"):
        load_image("ftp://example.com/x.jpg")
    with pytest.raises(ImageLoadError, match="unsupported"):
        load_image(12345)
    assert issubclass(ImageLoadError, ValueError)
    assert images_mod.DEFAULT_MAX_PIXELS < Image.MAX_IMAGE_PIXELS * 2


def test_build_dataset_fetches_images_and_records_failures(server, tmp_path: Path) -> None:
    from hf_spamguard.data import build_dataset, save_dataset

    base, httpd = server
    local = tmp_path / "images"
    local.mkdir()
    (local / "p3.png").write_bytes(PNG)
    header = "\tproduct_id\timage_url\tdescription\tyes_count\tno_count\tlabel\n"
    rows = [
        ("p1", f"{base}/good/build-1.jpg"),
        ("p2", f"{base}/missing"),
        ("p3", f"{base}/good/never-fetched.jpg"),  # the local file wins
        ("p4", ""),
        ("p5", f"{base}/not-image"),
    ]
    tsv = tmp_path / "train.tsv"
    tsv.write_text(
        header + "".join(f"{i}\t{pid}\t{url}\tjeans\t0\t3\t0\n" for i, (pid, url) in enumerate(rows)),
        encoding="utf-8",
    )
    kwargs = dict(
        image_dir=local,
        fetch_images=True,
        validation_size=0,
        image_cache_dir=tmp_path / "img-cache",
        image_timeout=1.0,
        image_retries=0,
        max_workers=4,
        progress=False,
    )
    dd = build_dataset(tsv, cache_dir=tmp_path / "c1", **kwargs)
    got = {r["product_id"]: r["image"] for r in dd["train"]}
    assert got["p1"].size == (64, 64) and got["p3"].size == (48, 48)
    assert got["p2"] is None and got["p4"] is None and got["p5"] is None
    status = {s["product_id"]: s for s in dd.build_report.image_status}
    assert status["p1"]["source"] == "fetched" and status["p3"]["source"] == "local"
    assert "404" in status["p2"]["error"] and "not a valid image" in status["p5"]["error"]
    assert httpd.hits["/good/never-fetched.jpg"] == 0

    out = save_dataset(dd, tmp_path / "out")
    lines = (out / "image_status.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 and any("p2" in line and "HTTP 404" in line for line in lines)

    # A fresh dataset cache with the same image cache: nothing is downloaded again.
    hits = httpd.hits["/good/build-1.jpg"]
    again = build_dataset(tsv, cache_dir=tmp_path / "c2", **kwargs)
    assert {s["product_id"]: s["source"] for s in again.build_report.image_status}["p1"] == "cache"
    assert httpd.hits["/good/build-1.jpg"] == hits
