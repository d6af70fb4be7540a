"""Safe, concurrent image fetching with a content-addressed disk cache, and ``load_image`` for inference.

Safety rules (images come from sellers, i.e. from untrusted URLs):

- only ``http``/``https``, also after redirects (at most :data:`MAX_REDIRECTS` of them);
- network policy (the HTTP client is :mod:`hf_spamguard.data.safe_http`): the host is resolved
  once, every address it resolves to is checked, and the socket is connected to exactly that checked
  address (the request still carries the URL's ``Host`` header and, for https, its SNI name and
  certificate check), so a DNS answer cannot change between check and connect. Loopback, private,
  link-local, multicast, reserved, unspecified and shared (100.64/10) addresses are refused, in every
  spelling: IPv6, IPv4-mapped / 6to4 / NAT64 IPv6, and the numeric forms ``inet_aton`` accepts
  (``0x7f000001``, ``2130706433``, ``017700000001``, ``127.1``). The check is made on the first
  request and again after every redirect, before connecting; a refused URL fails with exactly
  ``"refused: private address"``, whatever the address and port, so results do not reveal which
  internal ports are open. ``allow_private_networks=True`` (CLI: ``--allow-private-networks``) turns
  the check off, for intranet image servers; a collection of ``(ip, port)`` pairs allows just those
  endpoints (e.g. a test server on ``("127.0.0.1", port)``);
- a deadline per attempt: ``timeout`` seconds for the whole request (name resolution, connect, TLS
  handshake, status line and headers, redirects, body), enforced on every socket read and write, so a
  server that trickles its headers or body one byte at a time is cut off at the deadline too;
- a maximum number of bytes, checked against ``Content-Length`` and while streaming;
- the bytes must decode as an image with Pillow, and the pixel count must stay under a
  decompression-bomb limit (checked from the header, before any pixel is decoded);
- 5xx answers, 429, timeouts and broken connections are retried with exponential backoff; a
  ``Retry-After`` header (seconds or an HTTP date) on a retried answer is waited for, up to
  ``max_retry_after`` seconds (default :data:`DEFAULT_MAX_RETRY_AFTER`); 4xx answers, refused
  addresses, unknown hosts and invalid TLS certificates are not retried.

Cache layout (``cache_dir``): ``objects/<h[:2]>/<h>`` holds the bytes under their SHA-256 ``h`` (the
same picture behind two URLs is stored once) and ``urls/<sha256(url)>`` holds ``h`` for a URL. Both are
written atomically (temp file + ``os.replace``), so a killed run never leaves a truncated image behind:
the next run simply fetches it again.

A failed download never raises out of :func:`fetch_images`: it becomes a :class:`FetchResult` with
``ok=False`` and an ``error`` string, which the dataset builder turns into ``image=None`` plus a row in
``image_status.csv``. :func:`local_image_path` is the one look-up of ``<image_dir>/<product_id>.<ext>``
and never leaves ``image_dir``.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_spamguard.atomic import atomic_write_bytes
from hf_spamguard.data.safe_http import (
    MAX_REDIRECTS,
    REFUSED_PRIVATE,
    RETRY_STATUSES,
    FetchError,
    NetworkPolicy,
    RetryableError,
    get,
    normalise_policy,
)

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_RETRY_AFTER",
    "MAX_REDIRECTS",
    "REFUSED_PRIVATE",
    "RETRY_STATUSES",
    "FetchResult",
    "ImageLoadError",
    "NetworkPolicy",
    "fetch_image",
    "fetch_images",
    "load_image",
    "local_image_path",
    "verify_image_bytes",
]

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # product photos are < 2 MB; 20 MB leaves room for big originals
DEFAULT_MAX_PIXELS = 40_000_000  # ~ 8000 x 5000: anything larger is a bomb, not a listing photo
# A server asking for longer is waited for this long only, then the retry goes ahead: a build must
# not stall for an hour because one image host says "Retry-After: 3600".
DEFAULT_MAX_RETRY_AFTER = 30.0


class ImageLoadError(FetchError):
    """An image could not be fetched or is not a valid (safe) image (a ``ValueError``)."""


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


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ImageLoadError(f"only http/https URLs are fetched, got {url!r}")


def _check_options(timeout: float, retries: int, max_retry_after: float) -> None:
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if not (math.isfinite(max_retry_after) and max_retry_after >= 0):
        raise ValueError(f"max_retry_after must be a non-negative number of seconds, got {max_retry_after!r}")


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


def _attempts(
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    max_pixels: int,
    retries: int,
    backoff: float,
    max_retry_after: float,
    policy: bool | frozenset[Any],
) -> tuple[bytes, int, int]:
    """Up to ``retries + 1`` attempts; returns (verified body, status, attempts). Raises
    ImageLoadError, whose message ends with "(gave up after N attempts)" when retries ran out, and
    whose ``attempts`` attribute says how many were made."""
    attempts = 0
    while True:
        attempts += 1
        try:
            data, status = get(url, timeout=timeout, max_bytes=max_bytes, policy=policy)
            verify_image_bytes(data, max_pixels=max_pixels)
            return data, status, attempts
        except RetryableError as exc:
            if attempts > retries:
                error = ImageLoadError(f"{exc} (gave up after {attempts} attempts)")
                error.attempts = attempts  # type: ignore[attr-defined]
                raise error from None
            # Exponential backoff with a little per-thread jitter so retries do not arrive in lockstep;
            # the server's Retry-After, when longer, wins (up to the cap).
            delay = backoff * (2 ** (attempts - 1)) * random.uniform(1.0, 1.25)
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, max_retry_after))
            time.sleep(delay)
        except FetchError as exc:  # final: an ImageLoadError from verify_image_bytes, or from get()
            error = exc if isinstance(exc, ImageLoadError) else ImageLoadError(str(exc))
            error.attempts = attempts  # type: ignore[attr-defined]
            raise error from None


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
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    allow_private_networks: NetworkPolicy = False,
) -> FetchResult:
    """Fetch one image into the cache (or find it there). Never raises for a bad URL or image: the
    problem is in ``FetchResult.error``.

    ``timeout`` bounds each attempt as a whole (resolution, connect, headers, redirects, body); at most
    ``retries`` more attempts follow a retryable failure, after ``backoff * 2**n`` seconds or the
    server's ``Retry-After`` capped at ``max_retry_after``. ``allow_private_networks``: see
    :data:`NetworkPolicy` (default: only public addresses). Raises ValueError for invalid options.
    """
    _check_options(timeout, retries, max_retry_after)
    policy = normalise_policy(allow_private_networks)
    cache = Path(cache_dir)
    try:
        _check_url(url)
    except ImageLoadError as exc:
        return FetchResult(url=url, ok=False, error=str(exc))
    hit = _cached(cache, url)
    if hit is not None:
        return hit
    try:
        data, status, attempts = _attempts(
            url,
            timeout=timeout,
            max_bytes=max_bytes,
            max_pixels=max_pixels,
            retries=retries,
            backoff=backoff,
            max_retry_after=max_retry_after,
            policy=policy,
        )
    except ImageLoadError as exc:
        return FetchResult(url=url, ok=False, error=str(exc), attempts=getattr(exc, "attempts", 1))
    except Exception as exc:  # never crash the whole build because of one URL
        return FetchResult(url=url, ok=False, error=f"{type(exc).__name__}: {exc}", attempts=1)
    digest = hashlib.sha256(data).hexdigest()
    obj = _object_path(cache, digest)
    if not obj.is_file():
        atomic_write_bytes(obj, data)
    atomic_write_bytes(cache / "urls" / _url_key(url), digest.encode("ascii"))
    return FetchResult(
        url=url, ok=True, path=str(obj), sha256=digest, status=status, attempts=attempts, num_bytes=len(data)
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
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    allow_private_networks: NetworkPolicy = False,
    progress: bool = True,
) -> list[FetchResult]:
    """Fetch ``urls`` concurrently into ``cache_dir``; return one :class:`FetchResult` per URL, in order.

    Duplicate URLs are fetched once. ``max_workers=1`` fetches sequentially. Failures are results with
    ``ok=False``, never exceptions; invalid options raise ValueError before anything is fetched. The
    other options are :func:`fetch_image`'s.
    """
    from tqdm.auto import tqdm

    urls = list(urls)
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    _check_options(timeout, retries, max_retry_after)
    normalise_policy(allow_private_networks)  # a bad policy fails here, not once per URL
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    unique = list(dict.fromkeys(urls))
    kwargs = dict(
        timeout=timeout,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        retries=retries,
        backoff=backoff,
        max_retry_after=max_retry_after,
        allow_private_networks=allow_private_networks,
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


def local_image_path(image_dir: str | Path | None, product_id: str, extensions: Sequence[str]) -> Path | None:
    """The file ``<image_dir>/<product_id>.<ext>`` (``ext`` tried in order, lower then upper case), or
    None when there is none or when ``product_id`` would lead outside ``image_dir``.

    ``product_id`` comes from the TSV, i.e. from whoever wrote it: ``../secret/x``, an absolute path or
    anything else whose normalised path is not inside ``image_dir`` is never looked up. The normalised
    path is the one returned and read, so ``link/../x`` cannot reach outside through a symbolic link
    either; symbolic links that are inside the folder are the folder owner's and are followed.
    """
    if image_dir is None or not product_id or "\0" in product_id:
        return None
    root = os.path.abspath(image_dir)
    for ext in extensions:
        for name in (f"{product_id}.{ext}", f"{product_id}.{ext.upper()}"):
            candidate = os.path.normpath(os.path.join(root, name))
            try:
                inside = os.path.commonpath([root, candidate]) == root
            except ValueError:  # Windows: another drive
                inside = False
            if not inside:
                return None  # outside the folder: the same answer for every extension
            if os.path.isfile(candidate):
                return Path(candidate)
    return None


def load_image(
    src: Any,
    *,
    cache_dir: str | Path | None = None,
    timeout: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_private_networks: NetworkPolicy = False,
) -> PIL.Image.Image | None:
    """Turn ``src`` into an RGB ``PIL.Image.Image`` (or None).

    ``src`` may be None / "" (no image → None), a PIL image, raw bytes, a ``{"bytes": ..., "path": ...}``
    dict as stored by ``datasets.Image(decode=False)``, a local path, or an http(s) URL (fetched
    safely, with one retry, under the network policy ``allow_private_networks``; cached in ``cache_dir``
    when given). Raises :class:`ImageLoadError` for anything that is not a valid, safe image.
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
            src.get("path"),
            cache_dir=cache_dir,
            timeout=timeout,
            max_bytes=max_bytes,
            max_pixels=max_pixels,
            allow_private_networks=allow_private_networks,
        )
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        text = os.fspath(src)
        if isinstance(text, str) and not text.strip():
            return None
        scheme = urllib.parse.urlsplit(str(text)).scheme.lower()
        if scheme in ("http", "https"):
            data = _fetch_for_load(
                str(text),
                cache_dir,
                timeout=timeout,
                max_bytes=max_bytes,
                max_pixels=max_pixels,
                allow_private_networks=allow_private_networks,
            )
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


def _fetch_for_load(
    url: str,
    cache_dir: str | Path | None,
    *,
    timeout: float,
    max_bytes: int,
    max_pixels: int,
    allow_private_networks: NetworkPolicy,
) -> bytes:
    """The bytes behind ``url`` for :func:`load_image`: through the cache when there is one."""
    options = dict(timeout=timeout, max_bytes=max_bytes, max_pixels=max_pixels, retries=1)
    if cache_dir is not None:
        result = fetch_image(url, cache_dir, allow_private_networks=allow_private_networks, **options)
        if not result.ok:
            raise ImageLoadError(f"{url}: {result.error}")
        return Path(result.path).read_bytes()  # type: ignore[arg-type]
    _check_options(timeout, 1, DEFAULT_MAX_RETRY_AFTER)
    try:
        data, _, _ = _attempts(
            url,
            backoff=0.5,
            max_retry_after=DEFAULT_MAX_RETRY_AFTER,
            policy=normalise_policy(allow_private_networks),
            **options,
        )
    except ImageLoadError as exc:
        raise ImageLoadError(f"{url}: {exc}") from None
    return data
