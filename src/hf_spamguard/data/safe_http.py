"""The image fetcher's HTTP client: one GET with a network policy and a deadline, nothing else.

- Network policy: the host is resolved once (an IP literal, including the numeric forms ``inet_aton``
  accepts, is never looked up), every address is checked, and the socket is connected to exactly
  that checked address; the request still carries the URL's ``Host`` header and, for https, its SNI
  name and certificate check. Loopback, private, link-local, multicast, reserved, unspecified and
  other non-global addresses (IPv4, IPv6, IPv4-mapped, 6to4, NAT64) are refused, on the first request
  and after every redirect, before connecting, with the single message :data:`REFUSED_PRIVATE`.
  :data:`NetworkPolicy` says how to allow them.
- Deadline: ``timeout`` bounds the whole request (resolution, connect, TLS handshake, headers,
  redirects, body), not each socket operation, so a server trickling bytes is cut off too.

:func:`get` raises :class:`FetchError` for failures that another attempt would not fix and
:class:`RetryableError` (with the server's ``Retry-After`` in seconds, when it sent one) for the others.
Only the standard library is used.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import math
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "MAX_REDIRECTS",
    "REFUSED_PRIVATE",
    "RETRY_STATUSES",
    "FetchError",
    "NetworkPolicy",
    "RetryableError",
    "get",
    "is_public_address",
    "normalise_policy",
    "retry_after_seconds",
]

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "hf-spamguard-image-fetcher/0.1"
# The one message for every refused address: which one, and whether its port is open, stays unsaid.
REFUSED_PRIVATE = "refused: private address"
_CHUNK = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))  # printable ASCII but the space
# 64:ff9b::/96 embeds an IPv4 address for NAT64 gateways; ipaddress calls it "global" on Python 3.11.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NetworkPolicy = bool | Collection[tuple[str, int]]
"""``allow_private_networks``: False (refuse every non-public address), True (allow every address), or
a collection of ``(ip, port)`` pairs of IP literals, e.g. ``{("127.0.0.1", 8080)}``: those exact
endpoints are allowed besides the public internet (a test server, one intranet host)."""
_Policy = bool | frozenset[tuple[IPAddress, int]]


class FetchError(ValueError):
    """A failure that another attempt would not fix (4xx, refused address, unknown host, bad TLS...)."""


class RetryableError(Exception):
    """A failure worth another attempt; ``retry_after`` is the server's Retry-After in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- network policy ---------------------------------------------------------------------------------

_LEGACY_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``inet_aton`` (and so ``getaddrinfo``) reads from ``host``, or None.

    It accepts 1 to 4 dot-separated parts, each decimal, octal (leading 0) or hex (0x); the last part
    fills the remaining bytes: ``127.1``, ``0x7f000001``, ``2130706433`` and ``017700000001`` are all
    127.0.0.1. Parsed here so that such a host is refused before any resolver is asked."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_LEGACY_PART.fullmatch(p) for p in parts):
        return None
    values = [
        int(p[2:] or "0", 16) if p[:2].lower() == "0x" else int(p, 8 if p.startswith("0") else 10)
        for p in parts
    ]
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(parts)):
        return None
    number = 0
    for v in head:
        number = number << 8 | v
    return ipaddress.IPv4Address(number << 8 * (5 - len(parts)) | last)


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return _legacy_ipv4(host)


def is_public_address(ip: IPAddress) -> bool:
    """True for an address on the public internet (see the module docstring for what is refused)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d, whatever ipaddress says of it
            return is_public_address(ip.ipv4_mapped)
        embedded = ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None and not is_public_address(embedded):
            return False
    refused = (
        ip.is_loopback,
        ip.is_private,
        ip.is_link_local,
        ip.is_multicast,
        ip.is_reserved,
        ip.is_unspecified,
        not ip.is_global,  # also catches 100.64/10 (carrier-grade NAT) and other special ranges
    )
    return not any(refused)


def normalise_policy(allow: NetworkPolicy) -> _Policy:
    """``allow`` as :func:`get` takes it: a bool, or a frozenset of ``(ip_address, port)``. Raises
    TypeError / ValueError for anything that is not a :data:`NetworkPolicy`."""
    if isinstance(allow, bool):
        return allow
    if allow is None:
        return False
    if isinstance(allow, (str, bytes)):
        raise TypeError("allow_private_networks must be a bool or a collection of (ip, port) pairs")
    pairs = set()
    for item in allow:
        try:
            host, port = item
            ip = ipaddress.ip_address(host)
        except (TypeError, ValueError):
            raise ValueError(
                f"allow_private_networks: expected (ip, port) pairs with an IP literal, got {item!r}"
            ) from None
        pairs.add((ip, int(port)))
    return frozenset(pairs)


def _allowed(ip: IPAddress, port: int, policy: _Policy) -> bool:
    if policy is True or is_public_address(ip):
        return True
    if policy is False:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (ip, port) in policy or (mapped is not None and (mapped, port) in policy)


_DNS_POOL: ThreadPoolExecutor | None = None
_DNS_LOCK = threading.Lock()


def _resolve(host: str, port: int, deadline: float) -> list[tuple[socket.AddressFamily, tuple, IPAddress]]:
    """``(family, sockaddr, ip)`` for every address of ``host``; an IP literal is not looked up.

    ``getaddrinfo`` cannot be interrupted, so it runs in a small thread pool and the caller waits only
    until ``deadline``."""
    global _DNS_POOL
    literal = _ip_literal(host)
    if isinstance(literal, ipaddress.IPv4Address):
        return [(socket.AF_INET, (str(literal), port), literal)]
    flags = socket.AI_NUMERICHOST if literal is not None else 0  # IPv6 literal: only the scope id lookup
    with _DNS_LOCK:
        if _DNS_POOL is None:
            _DNS_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="spamguard-dns")
        pool = _DNS_POOL
    future = pool.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP, flags)
    try:
        infos = future.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        future.cancel()
        raise TimeoutError("name resolution did not finish before the deadline") from None
    targets = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0])  # a scoped IPv6 address keeps its "%zone" here
        targets.append((family, sockaddr, ip))
    if not targets:
        raise socket.gaierror(f"no IPv4/IPv6 address for {host!r}")
    return targets


# --- sockets with a deadline ------------------------------------------------------------------------


class _DeadlineMixin:
    """Every blocking read/write waits at most until ``deadline`` (``time.monotonic()`` seconds).

    A plain socket timeout bounds each read separately: a server sending a byte every half second
    never trips it. Re-arming the timeout with the time left before each read bounds the total."""

    deadline: float | None = None

    def _arm(self) -> None:
        if self.deadline is None:
            return
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self.settimeout(remaining)  # type: ignore[attr-defined]

    # Signatures differ between socket.socket and ssl.SSLSocket: pass the arguments through as given.
    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self._arm()
        return super().recv_into(*args, **kwargs)  # type: ignore[misc]

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        self._arm()
        return super().recv(*args, **kwargs)  # type: ignore[misc]

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        self._arm()
        super().sendall(*args, **kwargs)  # type: ignore[misc]


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    pass


_SSL_CONTEXT: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:  # a benign race: two threads may each build one, both are equivalent
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        _SSL_CONTEXT = context
    return _SSL_CONTEXT


def _connect(scheme: str, host: str, port: int, deadline: float, policy: _Policy) -> socket.socket:
    """A socket connected to a checked address of ``host`` (TLS-wrapped for https)."""
    literal = _ip_literal(host)
    if literal is not None and not _allowed(literal, port, policy):
        raise FetchError(REFUSED_PRIVATE)  # before any look-up, even the scope id's
    targets = _resolve(host, port, deadline)
    # Every address must pass: a name resolving to both a public and a private address is refused.
    if not all(_allowed(ip, port, policy) for _, _, ip in targets):
        raise FetchError(REFUSED_PRIVATE)
    error: OSError | None = None
    for family, sockaddr, _ in targets:
        sock = _DeadlineSocket(family, socket.SOCK_STREAM)
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline passed")
            sock.settimeout(remaining)
            sock.connect(sockaddr)  # the very address that was checked: no second DNS look-up
            if scheme == "https":
                sock.settimeout(max(deadline - time.monotonic(), 0.001))  # the handshake has a deadline
                tls = _ssl_context().wrap_socket(sock, server_hostname=host)
                tls.deadline = deadline
                return tls
            sock.deadline = deadline
            return sock
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise FetchError(f"TLS certificate not valid: {exc.verify_message or exc}") from None
        except OSError as exc:
            sock.close()
            error = exc
            if isinstance(exc, TimeoutError):
                break
    assert error is not None
    raise error


def _host_header(host: str, port: int, scheme: str) -> str:
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")  # what getaddrinfo looked up
        except UnicodeError:
            raise FetchError(f"invalid host name {host!r}") from None
    name = f"[{host}]" if ":" in host else host
    return name if port == _DEFAULT_PORTS[scheme] else f"{name}:{port}"


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP date); None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return math.inf if len(value) > 9 else float(value)  # ~31 years: capped by the caller anyway
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _open(
    url: str, deadline: float, policy: _Policy
) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    """GET ``url``, following redirects; every hop's address is checked before it is connected to."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise FetchError(f"redirect to a {scheme!r} URL refused")
        try:
            host, port = parts.hostname, parts.port or _DEFAULT_PORTS[scheme]
        except ValueError as exc:  # e.g. a port out of range
            raise FetchError(f"invalid URL: {exc}") from None
        if not host:
            raise FetchError(f"invalid URL: no host in {url!r}")
        sock = _connect(scheme, host, port, deadline, policy)
        conn = http.client.HTTPConnection(host, port)
        conn.sock = sock  # already connected (and checked): http.client must not connect again
        # Percent-encode what may not appear in a request line (spaces, control characters, non-ASCII
        # as UTF-8); everything else, an existing %XX included, is sent as the URL has it.
        target = urllib.parse.quote(
            (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_SAFE
        )
        headers = {
            "Host": _host_header(host, port, scheme),
            "User-Agent": USER_AGENT,
            "Accept": "image/*",
            "Connection": "close",
        }
        try:
            conn.request("GET", target, headers=headers)
            response = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        location = response.getheader("Location")
        if response.status not in REDIRECT_STATUSES or not location:
            return response, conn
        response.close()
        conn.close()
        url = urllib.parse.urljoin(url, location.strip())
    raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})")


def get(url: str, *, timeout: float, max_bytes: int, policy: _Policy) -> tuple[bytes, int]:
    """One attempt: GET ``url`` (following redirects) within ``timeout`` seconds in all, at most
    ``max_bytes``; returns (body, status). Raises FetchError (final) or RetryableError."""
    deadline = time.monotonic() + timeout
    conn: http.client.HTTPConnection | None = None
    total = 0
    try:
        response, conn = _open(url, deadline, policy)
        status = response.status
        if status in RETRY_STATUSES:
            raise RetryableError(f"HTTP {status}", retry_after_seconds(response.getheader("Retry-After")))
        if not 200 <= status < 300:
            raise FetchError(f"HTTP {status}: {response.reason}")
        length = response.getheader("Content-Length")
        length = length.strip() if length is not None else None
        declared = int(length) if length and length.isascii() and length.isdigit() else None
        if declared is not None and declared > max_bytes:
            raise FetchError(f"too large: Content-Length {declared} > max_bytes {max_bytes}")
        chunks: list[bytes] = []
        while True:
            # read1: at most one socket read, each bounded by the deadline (see _DeadlineMixin).
            chunk = response.read1(_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise FetchError(f"too large: more than max_bytes {max_bytes} bytes")
            chunks.append(chunk)
        if declared is not None and total < declared:
            # read1() signals an early close as EOF: compare with what the server promised.
            raise RetryableError(f"truncated response ({total} of {declared} bytes received)")
        return b"".join(chunks), status
    except (FetchError, RetryableError):
        raise
    except socket.gaierror as exc:  # an unknown host does not come back in a second
        raise FetchError(f"cannot resolve host: {exc}") from None
    except TimeoutError:
        raise RetryableError(f"timeout after {timeout:g}s") from None
    except http.client.IncompleteRead:  # the server closed mid-body
        raise RetryableError(f"truncated response ({total} bytes received)") from None
    except http.client.InvalidURL as exc:
        raise FetchError(f"invalid URL: {exc}") from None
    except (ConnectionError, OSError) as exc:  # RemoteDisconnected is a ConnectionResetError too
        raise RetryableError(f"connection failed: {type(exc).__name__}: {exc}") from None
    except http.client.HTTPException as exc:  # not HTTP at all, too many headers, a header too long...
        raise FetchError(f"bad HTTP response: {type(exc).__name__}: {exc}") from None
    finally:
        if conn is not None:
            conn.close()
