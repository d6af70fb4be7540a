"""Safe, concurrent image fetching with a content-addressed disk cache, and ``load_image`` for inference.

Safety rules (images come from sellers, i.e. from untrusted URLs):

- only ``http``/``https`` (also after redirects, which are limited in number);
- a per-request timeout: each socket operation waits at most ``timeout`` seconds and the body download
  stops once ``timeout`` has passed since the request started (so a trickling server is cut off too);
- a maximum number of bytes, checked against ``Content-Length`` and while streaming;
- the bytes must decode as an image with Pillow, and the pixel count must stay under a
  decompression-bomb limit (checked from the header, before any pixel is decoded);
- 5xx answers, 429 and timeouts are retried with exponential backoff; 4xx answers are not.

Cache layout (``cache_dir``): ``objects/<h[:2]>/<h>`` holds the bytes under their SHA-256 ``h`` (the
same picture behind two URLs is stored once) and ``urls/<sha256(url)>`` holds ``h`` for a URL. Both are
written atomically (temp file + ``os.replace``), so a killed run never leaves a truncated image behind:
the next run simply fetches it again.

A failed download never raises out of :func:`fetch_images`: it becomes a :class:`FetchResult` with
``ok=False`` and an ``error`` string, which the dataset builder turns into ``image=None`` plus a row in
``image_status.csv``.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_spamguard.atomic import atomic_write_bytes

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "FetchResult",
    "ImageLoadError",
    "fetch_image",
    "fetch_images",
    "load_image",
    "verify_image_bytes",
]

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # product photos are < 2 MB; 20 MB leaves room for big originals
DEFAULT_MAX_PIXELS = 40_000_000  # ~ 8000 x 5000: anything larger is a bomb, not a listing photo
MAX_REDIRECTS = 5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "hf-spamguard-image-fetcher/0.1"
_CHUNK = 64 * 1024


class ImageLoadError(ValueError):
    """An image could not be fetched or is not a valid (safe) image."""


@dataclass
class FetchResult:
    """Outcome of fetching one URL. ``path`` points into the cache when ``ok``."""

    url: str
    ok: bool
    path: str | None = None
    sha256: str | None = None
    error: str | None = None
    status: int | None = None
    attempts: int = 0
    from_cache: bool = False
    num_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _RetryableError(Exception):
    pass


class _SafeRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow at most MAX_REDIRECTS redirects, and only to http/https."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # same signature as urllib's
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to a {scheme!r} URL refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# One opener per process; urllib openers are safe to share across threads.
_OPENER = urllib.request.build_opener(_SafeRedirectHandler())


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ImageLoadError(f"only http/https URLs are fetched, got {url!r}")


def verify_image_bytes(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Check that ``data`` is a complete image that Pillow can decode and that it is not a decompression
    bomb; return ``(width, height)``. Raises :class:`ImageLoadError`."""
    import warnings

    from PIL import Image

    if not data:
        raise ImageLoadError("empty image data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                # Decided from the header alone, before a single pixel is decompressed.
                if width * height > max_pixels:
                    raise ImageLoadError(
                        f"image is {width}x{height} = {width * height} pixels, over the "
                        f"decompression-bomb limit of {max_pixels}"
                    )
                img.verify()
            # verify() does not decode pixel data; a full load catches truncated files.
            with Image.open(io.BytesIO(data)) as img:
                img.load()
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"decompression bomb: {exc}") from None
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...)
        raise ImageLoadError(f"not a valid image ({type(exc).__name__}: {exc})") from None
    return width, height


def _download(url: str, *, timeout: float, max_bytes: int) -> tuple[bytes, int]:
    """One HTTP GET bounded by ``timeout`` seconds in total and ``max_bytes``; returns (body, status)."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in RETRY_STATUSES:
            raise _RetryableError(f"HTTP {exc.code}") from None
        raise ImageLoadError(f"HTTP {exc.code}: {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, socket.gaierror):  # an unknown host does not come back in a second
            raise ImageLoadError(f"cannot resolve host: {reason}") from None
        if isinstance(reason, TimeoutError):
            raise _RetryableError(f"timeout after {timeout:g}s") from None
        if isinstance(reason, (ConnectionError, OSError)):
            raise _RetryableError(f"connection failed: {reason}") from None
        raise ImageLoadError(f"request failed: {reason}") from None
    except TimeoutError:
        raise _RetryableError(f"timeout after {timeout:g}s") from None
    except ConnectionError as exc:
        raise _RetryableError(f"connection failed: {exc}") from None
    with response:
        status = response.status
        _check_url(response.geturl())  # the final URL after redirects
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise ImageLoadError(f"too large: Content-Length {int(length)} > max_bytes {max_bytes}")
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _RetryableError(f"timeout after {timeout:g}s (download too slow)")
                # read1: at most one socket read, so the deadline is checked between reads.
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise ImageLoadError(f"too large: more than max_bytes {max_bytes} bytes")
                chunks.append(chunk)
        except TimeoutError:
            raise _RetryableError(f"timeout after {timeout:g}s") from None
        except (ConnectionError, OSError) as exc:
            raise _RetryableError(f"connection broken: {type(exc).__name__}: {exc}") from None
        except http.client.IncompleteRead:  # the server closed mid-body
            raise _RetryableError(f"truncated response ({total} bytes received)") from None
        if length is not None and length.isdigit() and total < int(length):
            # read1() signals an early close as EOF: compare with what the server promised.
            raise _RetryableError(f"truncated response ({total} of {int(length)} bytes received)")
    return b"".join(chunks), status


def _url_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def _object_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / "objects" / digest[:2] / digest


def _cached(cache_dir: Path, url: str) -> FetchResult | None:
    index = cache_dir / "urls" / _url_key(url)
    try:
        digest = index.read_text().strip()
    except OSError:
        return None
    obj = _object_path(cache_dir, digest)
    if len(digest) != 64 or not obj.is_file():
        return None
    return FetchResult(
        url=url, ok=True, path=str(obj), sha256=digest, from_cache=True, num_bytes=obj.stat().st_size
    )


def fetch_image(
    url: str,
    cache_dir: str | Path,
    *,
    timeout: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    retries: int = 3,
    backoff: float = 0.5,
) -> FetchResult:
    """Fetch one image into the cache (or find it there). Never raises for a bad URL or image: the
    problem is in ``FetchResult.error``."""
    cache = Path(cache_dir)
    try:
        _check_url(url)
    except ImageLoadError as exc:
        return FetchResult(url=url, ok=False, error=str(exc))
    hit = _cached(cache, url)
    if hit is not None:
        return hit
    attempts = 0
    error = "not attempted"
    while attempts <= retries:
        attempts += 1
        try:
            data, status = _download(url, timeout=timeout, max_bytes=max_bytes)
            verify_image_bytes(data, max_pixels=max_pixels)
        except _RetryableError as exc:
            error = str(exc)
            if attempts <= retries:
                # Exponential backoff with a little per-thread jitter so retries do not arrive in lockstep.
                time.sleep(backoff * (2 ** (attempts - 1)) * random.uniform(1.0, 1.25))
            continue
        except ImageLoadError as exc:
            return FetchResult(url=url, ok=False, error=str(exc), attempts=attempts)
        except Exception as exc:  # never crash the whole build because of one URL
            return FetchResult(url=url, ok=False, error=f"{type(exc).__name__}: {exc}", attempts=attempts)
        digest = hashlib.sha256(data).hexdigest()
        obj = _object_path(cache, digest)
        if not obj.is_file():
            atomic_write_bytes(obj, data)
        atomic_write_bytes(cache / "urls" / _url_key(url), digest.encode("ascii"))
        return FetchResult(
            url=url,
            ok=True,
            path=str(obj),
            sha256=digest,
            status=status,
            attempts=attempts,
            num_bytes=len(data),
        )
    return FetchResult(
        url=url, ok=False, error=f"{error} (gave up after {attempts} attempts)", attempts=attempts
    )


def fetch_images(
    urls: Sequence[str] | Iterable[str],
    cache_dir: str | Path,
    *,
    max_workers: int = 16,
    timeout: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    retries: int = 3,
    backoff: float = 0.5,
    progress: bool = True,
) -> list[FetchResult]:
    """Fetch ``urls`` concurrently into ``cache_dir``; return one :class:`FetchResult` per URL, in order.

    Duplicate URLs are fetched once. ``max_workers=1`` fetches sequentially. Failures are results with
    ``ok=False``, never exceptions.
    """
    from tqdm.auto import tqdm

    urls = list(urls)
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    unique = list(dict.fromkeys(urls))
    kwargs = dict(
        timeout=timeout, max_bytes=max_bytes, max_pixels=max_pixels, retries=retries, backoff=backoff
    )
    results: dict[str, FetchResult] = {}
    # Cache hits cost two small file reads: answer them here rather than through the thread pool.
    for url in unique:
        hit = _cached(Path(cache_dir), url)
        if hit is not None:
            results[url] = hit
    todo = [url for url in unique if url not in results]
    with tqdm(
        total=len(unique), initial=len(results), desc="images", unit="img", disable=not progress or not todo
    ) as bar:
        if max_workers == 1:
            for url in todo:
                results[url] = fetch_image(url, cache_dir, **kwargs)
                bar.update()
        else:
            with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="spamguard-img") as pool:
                futures = {pool.submit(fetch_image, url, cache_dir, **kwargs): url for url in todo}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
    return [results[url] for url in urls]


def load_image(
    src: Any,
    *,
    cache_dir: str | Path | None = None,
    timeout: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PIL.Image.Image | None:
    """Turn ``src`` into an RGB ``PIL.Image.Image`` (or None).

    ``src`` may be None / "" (no image → None), a PIL image, raw bytes, a ``{"bytes": ..., "path": ...}``
    dict as stored by ``datasets.Image(decode=False)``, a local path, or an http(s) URL (fetched
    safely; cached in ``cache_dir`` when given). Raises :class:`ImageLoadError` for anything that is not
    a valid, safe image.
    """
    from PIL import Image

    if src is None:
        return None
    if isinstance(src, Image.Image):
        return src if src.mode == "RGB" else src.convert("RGB")
    if isinstance(src, dict):
        if src.get("bytes"):
            return load_image(bytes(src["bytes"]), max_pixels=max_pixels)
        return load_image(
            src.get("path"), cache_dir=cache_dir, timeout=timeout, max_bytes=max_bytes, max_pixels=max_pixels
        )
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        text = os.fspath(src)
        if isinstance(text, str) and not text.strip():
            return None
        scheme = urllib.parse.urlsplit(str(text)).scheme.lower()
        if scheme in ("http", "https"):
            if cache_dir is not None:
                result = fetch_image(
                    str(text),
                    cache_dir,
                    timeout=timeout,
                    max_bytes=max_bytes,
                    max_pixels=max_pixels,
                    retries=1,
                )
                if not result.ok:
                    raise ImageLoadError(f"{text}: {result.error}")
                data = Path(result.path).read_bytes()  # type: ignore[arg-type]
            else:
                try:
                    data = _fetch_uncached(str(text), timeout=timeout, max_bytes=max_bytes)
                except ImageLoadError as exc:
                    raise ImageLoadError(f"{text}: {exc}") from None
        elif len(scheme) > 1 and "://" in str(text):
            raise ImageLoadError(f"only http/https URLs or local paths are accepted, got {text!r}")
        else:
            path = Path(text)
            if not path.is_file():
                raise ImageLoadError(f"{path}: no such image file")
            if path.stat().st_size > max_bytes:
                raise ImageLoadError(f"{path}: too large ({path.stat().st_size} > max_bytes {max_bytes})")
            data = path.read_bytes()
    else:
        raise ImageLoadError(f"unsupported image source of type {type(src).__name__}")
    verify_image_bytes(data, max_pixels=max_pixels)
    img = Image.open(io.BytesIO(data))
    img.load()
    return img if img.mode == "RGB" else img.convert("RGB")


def _fetch_uncached(url: str, *, timeout: float, max_bytes: int, retries: int = 1) -> bytes:
    _check_url(url)
    for attempt in range(retries + 1):
        try:
            return _download(url, timeout=timeout, max_bytes=max_bytes)[0]
        except _RetryableError as exc:
            if attempt == retries:
                raise ImageLoadError(str(exc)) from None
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover
