"""Image fetching against a real threaded HTTP server on 127.0.0.1 (no mocks of the network)."""

from __future__ import annotations

import contextlib
import io
import ipaddress
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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
            server.times[self.path].append(time.monotonic())
            server.host_headers[self.path] = self.headers.get("Host")
            hits = server.hits[self.path]
        path = self.path
        if path in server.routes:  # redirects registered by a test
            self._redirect(server.routes[path])
        elif path.startswith("/good/"):
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
        elif path == "/trickle-headers":  # the status line and headers, one byte every 0.5 s
            head = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n"
            try:
                for i in range(40):  # bounded: 20 s at most, and it stops once the client has gone
                    self.wfile.write(head[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass
            self.close_connection = True
        elif path.startswith("/busy/"):  # /busy/<status>/<retry-after>/<name>: busy once, then fine
            _, _, status, after, _ = path.split("/", 4)
            if hits == 1:
                self.send_response(int(status))
                self.send_header("Retry-After", after)
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"busy")
            else:
                self._send(200, GOOD)
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


@contextlib.contextmanager
def _serve() -> Iterator[ThreadingHTTPServer]:
    """A ThreadingHTTPServer with _Handler on 127.0.0.1 (a free port), shut down on exit."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.hits = Counter()
    httpd.times = defaultdict(list)
    httpd.host_headers = {}
    httpd.routes = {}
    httpd.lock = threading.Lock()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ThreadingHTTPServer]]:
    with _serve() as httpd:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd


# The one error of every refused address (issue #11: it must not tell which internal ports are open).
REFUSED_PRIVATE = "refused: private address"
# The tests' servers are on 127.0.0.1, which the fetcher refuses unless told otherwise.
LOCAL = dict(allow_private_networks=True)
FAST = dict(timeout=0.5, retries=1, backoff=0.01, progress=False, **LOCAL)


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
    ok = fetch_image(f"{base}/flaky/x.jpg", tmp_path, timeout=1.0, retries=2, backoff=0.01, **LOCAL)
    assert ok.ok and ok.attempts == 2 and httpd.hits["/flaky/x.jpg"] == 2
    bad = fetch_image(f"{base}/always500", tmp_path, timeout=1.0, retries=2, backoff=0.01, **LOCAL)
    assert not bad.ok and bad.attempts == 3 and "503" in bad.error and "gave up" in bad.error
    assert httpd.hits["/always500"] == 3


def test_timeouts_slow_and_trickling_servers(server, tmp_path: Path) -> None:
    base, _ = server
    slow = fetch_image(f"{base}/slow", tmp_path, timeout=0.3, retries=1, backoff=0.01, **LOCAL)
    assert not slow.ok and "timeout" in slow.error and slow.attempts == 2
    # Each byte arrives well within the socket timeout, but the whole body would take 4 s.
    trickle = fetch_image(f"{base}/trickle", tmp_path, timeout=0.5, retries=0, **LOCAL)
    assert not trickle.ok and "timeout" in trickle.error
    assert _no_temp_files(tmp_path) and not (tmp_path / "objects").exists()


def test_truncated_body_and_max_bytes(server, tmp_path: Path) -> None:
    base, _ = server
    truncated = fetch_image(f"{base}/truncated-body", tmp_path, timeout=1.0, retries=0, **LOCAL)
    assert not truncated.ok and "truncated" in truncated.error
    declared = fetch_image(f"{base}/huge-declared", tmp_path, max_bytes=1_000_000, retries=0, **LOCAL)
    assert not declared.ok and "too large" in declared.error and "Content-Length" in declared.error
    streamed = fetch_image(f"{base}/huge-stream", tmp_path, max_bytes=100_000, retries=0, **LOCAL)
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
        fetch_image(url, tmp_path, retries=0, **LOCAL)
    monkeypatch.undo()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    again = fetch_image(url, tmp_path, retries=0, **LOCAL)
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
    assert load_image(f"{base}/good/load.jpg", **LOCAL).size == (64, 64)
    cached = load_image(f"{base}/good/load-cached.jpg", cache_dir=tmp_path / "cache", **LOCAL)
    assert cached.size == (64, 64) and (tmp_path / "cache" / "objects").is_dir()
    with pytest.raises(ImageLoadError, match="not a valid image"):
        load_image(b"definitely not an image")
    with pytest.raises(ImageLoadError, match="404"):
        load_image(f"{base}/missing", **LOCAL)
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
        **LOCAL,
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


# --- deadlines and Retry-After (issue #11, item 4) ---------------------------------------------------


def test_timeout_is_a_deadline_for_trickled_headers(server, tmp_path: Path) -> None:
    """Each header byte arrives well within the timeout, but the headers would take 20 s: the request
    as a whole must stop at the deadline, per attempt."""
    base, _ = server
    start = time.monotonic()
    once = fetch_image(f"{base}/trickle-headers", tmp_path, timeout=1.0, retries=0, **LOCAL)
    elapsed = time.monotonic() - start
    assert not once.ok and "timeout after 1s" in once.error and once.attempts == 1
    assert elapsed < 2.5, f"one attempt with timeout=1 took {elapsed:.1f}s"
    start = time.monotonic()
    twice = fetch_image(f"{base}/trickle-headers", tmp_path, timeout=1.0, retries=1, backoff=0.01, **LOCAL)
    elapsed = time.monotonic() - start
    assert not twice.ok and twice.attempts == 2 and "gave up after 2 attempts" in twice.error
    assert elapsed < 3.5, f"two attempts with timeout=1 took {elapsed:.1f}s"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_respected(server, tmp_path: Path, status: int) -> None:
    base, httpd = server
    path = f"/busy/{status}/1/x-{tmp_path.name}.jpg"
    result = fetch_image(f"{base}{path}", tmp_path, timeout=2.0, retries=2, backoff=0.01, **LOCAL)
    assert result.ok and result.attempts == 2
    first, second = httpd.times[path]
    assert second - first >= 1.0, f"retried after {second - first:.2f}s despite Retry-After: 1"


def test_huge_retry_after_is_capped(server, tmp_path: Path) -> None:
    base, httpd = server
    path = f"/busy/503/86400/x-{tmp_path.name}.jpg"
    start = time.monotonic()
    result = fetch_image(
        f"{base}{path}", tmp_path, timeout=2.0, retries=1, backoff=0.01, max_retry_after=0.3, **LOCAL
    )
    assert result.ok and result.attempts == 2
    first, second = httpd.times[path]
    assert 0.3 <= second - first < 1.5 and time.monotonic() - start < 3.0


def test_retry_after_values() -> None:
    from email.utils import format_datetime

    from hf_spamguard.data.safe_http import retry_after_seconds

    assert retry_after_seconds("3") == 3.0 and retry_after_seconds(" 0 ") == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("9" * 400) == float("inf")  # capped by max_retry_after, never int()-ed
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert 100 < retry_after_seconds(future) <= 120


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_invalid_timeouts_are_refused(tmp_path: Path, bad: float) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        fetch_image("https://img.example/x.jpg", tmp_path, timeout=bad)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        fetch_images(["https://img.example/x.jpg"], tmp_path, timeout=bad, progress=False)


# --- network policy (issue #11, item 8) --------------------------------------------------------------

HOSTILE_URLS = [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://10.0.0.1/x.jpg",
    "http://172.16.0.1/x.jpg",
    "http://192.168.1.1/x.jpg",
    "http://100.64.0.1/x.jpg",  # carrier-grade NAT
    "http://127.0.0.1/x.jpg",
    "https://127.0.0.1:8443/x.jpg",
    "http://127.1/x.jpg",
    "http://0x7f000001/x.jpg",
    "http://2130706433/x.jpg",
    "http://017700000001/x.jpg",
    "http://0177.0.0.1/x.jpg",
    "http://0x7f.1/x.jpg",
    "http://0/x.jpg",
    "http://0.0.0.0/x.jpg",
    "http://224.0.0.1/x.jpg",  # multicast
    "http://240.0.0.1/x.jpg",  # reserved
    "http://255.255.255.255/x.jpg",
    "http://[::1]/x.jpg",
    "http://[::]/x.jpg",
    "http://[fd00::1]/x.jpg",
    "http://[fe80::1]/x.jpg",
    "http://[fe80::1%25eth0]/x.jpg",
    "http://[ff02::1]/x.jpg",
    "http://[::ffff:127.0.0.1]/x.jpg",  # IPv4-mapped
    "http://[::ffff:a9fe:a9fe]/x.jpg",  # IPv4-mapped 169.254.169.254
    "http://[::127.0.0.1]/x.jpg",  # IPv4-compatible
    "http://[64:ff9b::7f00:1]/x.jpg",  # NAT64 of 127.0.0.1
    "http://[2002:7f00:1::]/x.jpg",  # 6to4 of 127.0.0.1
    "http://localhost/x.jpg",  # a name resolving to loopback
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_private_addresses_are_refused_before_connecting(url: str, tmp_path: Path, monkeypatch) -> None:
    def no_connect(*args, **kwargs):
        raise AssertionError(f"connected although {url} must be refused first")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    result = fetch_image(url, tmp_path, timeout=1.0, retries=2, backoff=0.01)
    assert not result.ok and result.error == REFUSED_PRIVATE and result.attempts == 1
    with pytest.raises(ImageLoadError, match="refused: private address"):
        load_image(url)


def test_numeric_host_forms() -> None:
    from hf_spamguard.data.safe_http import _ip_literal, is_public_address

    loopback = ipaddress.ip_address("127.0.0.1")
    for host in ("127.1", "0x7f000001", "2130706433", "017700000001", "0177.0.0.1", "0x7f.0.0.1", "127.0.1"):
        assert _ip_literal(host) == loopback, host
    for host in ("localhost", "img.example", "1.2.3.4.5", "256.1.1.1", "1.16777216", "08", "1..2", "0x1g"):
        assert _ip_literal(host) is None, host
    assert _ip_literal("0x") == _ip_literal("0") == ipaddress.ip_address("0.0.0.0")  # as inet_aton reads them
    assert is_public_address(ipaddress.ip_address("93.184.216.34"))
    assert is_public_address(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946"))
    assert is_public_address(ipaddress.ip_address("::ffff:93.184.216.34"))


def test_refusals_do_not_reveal_open_ports(server, tmp_path: Path) -> None:
    base, httpd = server
    open_port = httpd.server_address[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    results = fetch_images(
        [f"http://127.0.0.1:{open_port}/good/p.jpg", f"http://127.0.0.1:{closed_port}/good/p.jpg"],
        tmp_path,
        timeout=1.0,
        retries=0,
        progress=False,
    )
    assert [r.error for r in results] == [REFUSED_PRIVATE, REFUSED_PRIVATE]
    assert httpd.hits["/good/p.jpg"] == 0


def test_localhost_name_is_refused_by_default(server, tmp_path: Path) -> None:
    base, httpd = server
    url = base.replace("127.0.0.1", "localhost") + "/good/by-name.jpg"
    refused = fetch_image(url, tmp_path, timeout=1.0, retries=0)
    assert not refused.ok and refused.error == REFUSED_PRIVATE and httpd.hits["/good/by-name.jpg"] == 0
    allowed = fetch_image(url, tmp_path, timeout=1.0, retries=0, **LOCAL)
    assert allowed.ok and httpd.hits["/good/by-name.jpg"] == 1
    # Connected to the checked address, the request still names the host of the URL.
    assert httpd.host_headers["/good/by-name.jpg"] == f"localhost:{httpd.server_address[1]}"


def test_redirect_to_a_private_address_is_refused_after_the_redirect(server, tmp_path: Path) -> None:
    """Only the first server's exact endpoint is allowed: a redirect from it to any other private
    endpoint (another port, other spellings of loopback) is refused before connecting to it."""
    base, first = server
    port = first.server_address[1]
    only_first = {("127.0.0.1", port)}
    with _serve() as second:
        other = second.server_address[1]
        targets = [
            f"http://127.0.0.1:{other}/good/second.jpg",
            f"http://0x7f000001:{other}/good/second.jpg",
            f"http://127.1:{other}/good/second.jpg",
            f"http://localhost:{other}/good/second.jpg",
            f"http://[::ffff:127.0.0.1]:{other}/good/second.jpg",
            f"http://[::1]:{other}/good/second.jpg",
            "http://169.254.169.254/latest/meta-data/",
        ]
        for i, target in enumerate(targets):
            first.routes[f"/to-private-{i}"] = target
        urls = [f"{base}/to-private-{i}" for i in range(len(targets))]
        results = fetch_images(
            urls, tmp_path, timeout=1.0, retries=0, allow_private_networks=only_first, progress=False
        )
        assert [r.error for r in results] == [REFUSED_PRIVATE] * len(targets)
        assert all(first.hits[f"/to-private-{i}"] == 1 for i in range(len(targets)))  # the first hop happened
        assert second.hits["/good/second.jpg"] == 0  # ...the second never did
        # Allowed to the first server, a same-server redirect still works.
        same = fetch_image(
            f"{base}/redirect", tmp_path, timeout=1.0, retries=0, allow_private_networks=only_first
        )
        assert same.ok
        # With private networks allowed, the redirect to the second server is followed.
        followed = fetch_image(f"{base}/to-private-0", tmp_path / "c2", timeout=1.0, retries=0, **LOCAL)
        assert followed.ok and second.hits["/good/second.jpg"] == 1


def test_network_policy_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="IP literal"):
        fetch_images(["http://x.example/a.jpg"], tmp_path, allow_private_networks={("localhost", 80)})
    with pytest.raises(TypeError):
        fetch_image("http://x.example/a.jpg", tmp_path, allow_private_networks="127.0.0.1")


def test_build_dataset_refuses_private_addresses_by_default(server, tmp_path: Path) -> None:
    from hf_spamguard.data import build_dataset

    base, httpd = server
    tsv = tmp_path / "train.tsv"
    tsv.write_text(
        "product_id\timage_url\tdescription\tyes_count\tno_count\tlabel\n"
        f"q1\t{base}/good/build-private.jpg\tjeans\t0\t3\t0\n",
        encoding="utf-8",
    )
    kwargs = dict(
        fetch_images=True,
        validation_size=0,
        image_cache_dir=tmp_path / "img",
        image_retries=0,
        progress=False,
    )
    dd = build_dataset(tsv, cache_dir=tmp_path / "c1", **kwargs)
    (status,) = dd.build_report.image_status
    assert not status["ok"] and status["error"].endswith(f"fetch failed: {REFUSED_PRIVATE}")
    assert httpd.hits["/good/build-private.jpg"] == 0
    dd = build_dataset(tsv, cache_dir=tmp_path / "c2", allow_private_networks=True, **kwargs)
    assert dd.build_report.image_status[0]["source"] == "fetched"


def test_cli_allow_private_networks_and_timeout(server, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hf_spamguard.cli import app

    base, httpd = server
    tsv = tmp_path / "train.tsv"
    tsv.write_text(
        "product_id\timage_url\tdescription\tyes_count\tno_count\tlabel\n"
        f"c1\t{base}/good/cli-private.jpg\tjeans\t0\t3\t0\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    common = ["dataset", "build", "--train", str(tsv), "--validation-size", "0", "--fetch-images"]
    refused = runner.invoke(
        app, [*common, "--out", str(tmp_path / "o1"), "--cache-dir", str(tmp_path / "c1")]
    )
    assert refused.exit_code == 0, refused.output
    assert "images: 0/1 available" in refused.output and httpd.hits["/good/cli-private.jpg"] == 0
    assert REFUSED_PRIVATE in (tmp_path / "o1" / "image_status.csv").read_text(encoding="utf-8")
    allowed = runner.invoke(
        app,
        [
            *common,
            "--allow-private-networks",
            "--out",
            str(tmp_path / "o2"),
            "--cache-dir",
            str(tmp_path / "c2"),
        ],
    )
    assert allowed.exit_code == 0, allowed.output
    assert "images: 1/1 available" in allowed.output and httpd.hits["/good/cli-private.jpg"] == 1
    for bad in ("0", "-1", "nan", "inf"):
        result = runner.invoke(app, [*common, "--timeout", bad, "--out", str(tmp_path / "o3")])
        assert result.exit_code == 2 and "--timeout" in result.output and "Traceback" not in result.output


# --- image look-up stays inside --image-dir (issue #11, item 9) ---------------------------------------


def test_local_image_lookup_stays_inside_the_folder(tmp_path: Path) -> None:
    from hf_spamguard.data import build_dataset
    from hf_spamguard.data.images import local_image_path

    images = tmp_path / "images"
    images.mkdir()
    (images / "inside.png").write_bytes(PNG)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "x.png").write_bytes(OTHER)
    (secret / "y.png").write_bytes(OTHER)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (images / "link").symlink_to(outside, target_is_directory=True)
    (tmp_path / "z.png").write_bytes(OTHER)  # images/link/../z.png at the OS level (link is followed)

    tsv = tmp_path / "train.tsv"
    rows = [("inside", "0"), ("../secret/x", "0"), (str(secret / "y"), "0")]
    tsv.write_text(
        "product_id\timage_url\tdescription\tyes_count\tno_count\tlabel\n"
        + "".join(f"{pid}\t\tjeans\t0\t3\t{label}\n" for pid, label in rows),
        encoding="utf-8",
    )
    dd = build_dataset(tsv, image_dir=images, validation_size=0, cache_dir=tmp_path / "c", progress=False)
    got = {r["product_id"]: r["image"] for r in dd["train"]}
    assert got["inside"] is not None and got["inside"].size == (48, 48)
    assert got["../secret/x"] is None and got[str(secret / "y")] is None
    status = {s["product_id"]: s for s in dd.build_report.image_status}
    assert status["../secret/x"]["source"] == "none" and status[str(secret / "y")]["source"] == "none"

    exts = ("jpg", "png")
    assert local_image_path(images, "inside", exts) == images / "inside.png"
    for pid in (
        "../secret/x",
        str(secret / "y"),
        "link/../../secret/x",
        "../images/../secret/x",
        "link/../z",
        "..",
    ):
        assert local_image_path(images, pid, exts) is None, pid


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ThreadingHTTPServer, str]]:
    """_Handler over TLS with a throw-away self-signed certificate for 127.0.0.1 and localhost."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with _serve() as httpd:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        yield f"https://127.0.0.1:{httpd.server_address[1]}", httpd, str(cert)


def test_https_certificate_host_header_and_deadline(tls_server, tmp_path: Path, monkeypatch) -> None:
    import ssl

    from hf_spamguard.data import safe_http

    base, httpd, cert = tls_server
    # The system's CAs do not know the test certificate: a final (not retried) error.
    untrusted = fetch_image(f"{base}/good/tls.jpg", tmp_path, timeout=2.0, retries=2, backoff=0.01, **LOCAL)
    assert not untrusted.ok and "TLS certificate not valid" in untrusted.error and untrusted.attempts == 1
    # Trusting it, the connection to the checked address verifies the name of the URL (IP or SNI).
    trusting = ssl.create_default_context(cafile=cert)
    trusting.sslsocket_class = safe_http._DeadlineSSLSocket
    monkeypatch.setattr(safe_http, "_SSL_CONTEXT", trusting)
    by_ip = fetch_image(f"{base}/good/tls.jpg", tmp_path, timeout=2.0, retries=0, **LOCAL)
    assert by_ip.ok and Path(by_ip.path).read_bytes() == GOOD
    by_name = fetch_image(
        base.replace("127.0.0.1", "localhost") + "/good/tls-name.jpg",
        tmp_path,
        timeout=2.0,
        retries=0,
        **LOCAL,
    )
    assert by_name.ok and httpd.host_headers["/good/tls-name.jpg"] == f"localhost:{httpd.server_address[1]}"
    assert fetch_image(f"{base}/good/tls-2.jpg", tmp_path, timeout=2.0).error == REFUSED_PRIVATE
    start = time.monotonic()
    trickled = fetch_image(f"{base}/trickle-headers", tmp_path, timeout=1.0, retries=0, **LOCAL)
    assert not trickled.ok and "timeout" in trickled.error and time.monotonic() - start < 2.5


def test_url_paths_are_percent_encoded(server, tmp_path: Path) -> None:
    base, httpd = server
    result = fetch_image(f"{base}/good/with space é.jpg", tmp_path, timeout=1.0, retries=0, **LOCAL)
    assert result.ok and httpd.hits["/good/with%20space%20%C3%A9.jpg"] == 1
