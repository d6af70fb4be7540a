"""The one place that talks to the Hub: uploads (``create_repo`` + ``upload_folder``) and downloads.

Ground floor: every publisher (datasets, models, the metric Space, baselines) calls
:func:`upload_folder_to_hub`, and every loader of a spamguard folder or listings dataset (baselines,
students, ``predict``, ``load_listings``) calls :func:`local_folder`, so authentication, caching and
error messages are the same for all. huggingface_hub is imported inside the functions: the baseline CLI
must start without heavy imports.

**Local path or Hub id** (:func:`is_hub_id`, the one rule): a name that exists locally is local; one
that does not have the form ``namespace/name`` is local; so is one of that form that a person would
only mean as a path: its first part is an existing local folder (``data/listngs2`` where ``data/``
exists) or it ends in a data file's suffix (``exports/listings.tsv``). Only what is left is looked up
on the Hub. A local path that does not exist is an error at once (:func:`missing_path_error`).

**An unreachable Hub costs one short attempt** (:func:`check_hub`): before downloading or uploading,
one request of at most :data:`PROBE_TIMEOUT` seconds, without the client's retries, asks for the repo's
info. A transport failure (connection refused, DNS, timeout, proxy) ends there with
:class:`HubUnreachableError`, one line naming the endpoint, unless the Hugging Face cache already
holds the repo (then the cached snapshot is used, with a warning). With ``HF_HUB_OFFLINE=1`` no
request is made at all and only the cache is used.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_TYPES = ("model", "dataset", "space")
# What the Hub accepts as "namespace/name"; anything else is left to the caller as a local path.
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9_][\w.-]*")
# A canonical repo: a bare name without namespace (``gpt2``, ``imdb``), which the Hub still resolves.
_CANONICAL = re.compile(r"[A-Za-z0-9][\w.-]*")
#: Suffixes of the files spamguard reads: ``org/x.tsv`` is a local file, never a repo to download.
LOCAL_SUFFIXES = (".tsv", ".txt", ".csv", ".parquet", ".jsonl", ".json", ".yaml", ".yml", ".skops", ".zip")
#: Seconds the one reachability request may take (connect + answer); it is never retried.
PROBE_TIMEOUT = 5.0
_OFFLINE_HINT = "set HF_HUB_OFFLINE=1 to work offline"


class HubUnreachableError(FileNotFoundError, ConnectionError):
    """The Hub could not be reached (connection refused, DNS, timeout, proxy): one line naming the
    repo, the endpoint and the transport error.

    A ``FileNotFoundError`` for the callers that load a source (the source cannot be found) and a
    ``ConnectionError`` for those that upload."""

    # The message names the repo and the endpoint already: context managers that prefix an OSError with
    # what was being done and to which path (hf_spamguard.predict.io_errors) leave it as it is.
    _spamguard_described = True


def is_repo_id(text: str | os.PathLike[str], *, allow_canonical: bool = False) -> bool:
    """``text`` has the form of a Hub repo id (``namespace/name``); whether a local path of that name
    exists, or is meant, is :func:`is_hub_id`'s question.

    ``allow_canonical``: also accept a bare canonical name (``gpt2``, ``bert-base-uncased``, ``imdb``).
    Only card metadata (``base_model``, ``datasets``) passes it: it names a repo that exists on the Hub
    but is never a target of our own uploads or downloads, which need an explicit namespace."""
    text = os.fspath(text)
    return bool(_REPO_ID.fullmatch(text) or (allow_canonical and _CANONICAL.fullmatch(text)))


def local_path_reason(text: str | os.PathLike[str]) -> str | None:
    """Why ``text``, which has the form ``namespace/name``, is still meant as a local path (its first
    part is an existing folder, or it ends in one of :data:`LOCAL_SUFFIXES`); None when nothing says so."""
    text = os.fspath(text)
    head, _, tail = text.partition("/")
    suffix = Path(tail).suffix.lower()
    if suffix in LOCAL_SUFFIXES:
        return f"it ends in {suffix}"
    if Path(head).is_dir():
        return f"{head}/ is a local folder"
    return None


def is_hub_id(text: str | os.PathLike[str]) -> bool:
    """True when ``text`` names a Hub repo to look up, False when it is a local path (the module's rule:
    it exists locally, is not of the form ``namespace/name``, or :func:`local_path_reason` says so)."""
    text = os.fspath(text)
    return is_repo_id(text) and not os.path.lexists(text) and local_path_reason(text) is None


def missing_path_error(text: str | os.PathLike[str], what: str = "file or folder") -> FileNotFoundError:
    """The one-line error for a local path that does not exist: ``"<text>: no such <what> (...)"``, the
    parenthesis saying why it was not looked up on the Hub."""
    text = os.fspath(text)
    if not is_repo_id(text):
        why = "and not a Hub id like 'org/name'"
    else:
        why = f"a local path, not looked up on the Hub: {local_path_reason(text) or 'it exists'}"
    return FileNotFoundError(f"{text}: no such {what} ({why})")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "no answer from the Hub" (not an HTTP error status): the HTTP clients'
    transport errors and the OS's connection errors. Offline mode is not one of them."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for name in ("httpx", "httpx2"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "TransportError"):
            found.append(module.TransportError)
    requests = sys.modules.get("requests")
    if requests is not None:
        found += [requests.exceptions.ConnectionError, requests.exceptions.Timeout]
    return tuple(found)


def _unreachable_cause(exc: BaseException) -> BaseException | None:
    """The transport error in ``exc``'s chain (the client wraps them), or None when there is none."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    transport = _transport_errors()
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen:
        if isinstance(cause, OfflineModeIsEnabled):
            return None
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    hits = [e for e in seen if isinstance(e, transport)]
    return hits[-1] if hits else None


def _describe(cause: BaseException) -> str:
    from huggingface_hub import constants

    return f"the request to {constants.ENDPOINT} failed ({type(cause).__name__}: {first_line(cause)})"


def check_hub(
    repo_id: str,
    *,
    repo_type: str = "model",
    token: str | None = None,
    timeout: float = PROBE_TIMEOUT,
) -> None:
    """Ask the Hub once, within ``timeout`` seconds and without retries, for ``repo_id``'s info.

    Returns when any answer came back (an error status such as 404 for a repo not created yet counts:
    the Hub is reachable, and the real call reports it properly). Raises :class:`HubUnreachableError`
    ``"cannot reach the Hub for '<repo_id>': the request to <endpoint> failed (<error>)"`` when no
    answer came. Makes no request in offline mode (``HF_HUB_OFFLINE=1``).
    """
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return
    try:
        HfApi(token=token).repo_info(repo_id, repo_type=repo_type, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - only "no answer" is this function's business
        cause = _unreachable_cause(exc)
        if cause is None:
            return
        raise HubUnreachableError(f"cannot reach the Hub for {repo_id!r}: {_describe(cause)}") from exc


def local_folder(
    name_or_path: str | os.PathLike[str],
    *,
    repo_type: str = "model",
    token: str | None = None,
    revision: str | None = None,
    what: str = "folder",
) -> Path:
    """A local folder for ``name_or_path``: the path itself when it is local (see :func:`is_hub_id`),
    else the Hub snapshot of it.

    A Hub id is downloaded with ``huggingface_hub.snapshot_download`` into the Hugging Face cache
    (``HF_HUB_CACHE``), so a second call reuses the cached snapshot, offline included. A local path is
    returned unchanged, whether it exists or not, so callers keep their own "no such folder" errors.

    Raises :class:`HubUnreachableError` (one line ending "set HF_HUB_OFFLINE=1 to work offline") after
    one short attempt when the Hub cannot be reached and the cache does not hold the repo (when it
    does, the cached snapshot is returned with a warning), and ``FileNotFoundError`` (one line: the id,
    that it is not a local ``what``, and the Hub's reason) when the repo cannot be downloaded.
    """
    path = Path(name_or_path)
    text = os.fspath(name_or_path)
    if not is_hub_id(text):
        return path
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    prefix = f"{text}: not a local {what}, and"
    try:
        check_hub(text, repo_type=repo_type, token=token)
    except HubUnreachableError as exc:
        try:
            cached = snapshot_download(
                text, repo_type=repo_type, revision=revision, token=token, local_files_only=True
            )
        except Exception:  # noqa: BLE001 - not in the cache: the Hub's absence is the error to report
            raise HubUnreachableError(f"{prefix} {exc}; {_OFFLINE_HINT}") from exc
        logger.warning("%s; using the cached snapshot %s", exc, cached)
        return Path(cached)
    # OSError covers the Hub client's own errors (HfHubHTTPError, LocalEntryNotFoundError, offline mode)
    # and requests' transport errors; the httpx transports of huggingface_hub >= 1.0 raise non-OSErrors.
    transport = tuple(m.HTTPError for name in ("httpx", "httpx2") if (m := sys.modules.get(name)) is not None)
    try:
        folder = snapshot_download(text, repo_type=repo_type, revision=revision, token=token)
    except (OSError, HFValidationError, *transport) as exc:
        cause = _unreachable_cause(exc)
        if cause is not None:  # the Hub answered the probe, then went away
            raise HubUnreachableError(
                f"{prefix} cannot reach the Hub for {text!r}: {_describe(cause)}; {_OFFLINE_HINT}"
            ) from exc
        raise FileNotFoundError(
            f"{prefix} downloading it from the Hub ({repo_type} repo) failed: "
            f"{_hub_reason(exc, repo_type, revision)}"
        ) from exc
    return Path(folder)


def _hub_reason(exc: BaseException, repo_type: str, revision: str | None) -> str:
    """One line saying why a download failed; the client's own messages span several lines."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if constants.HF_HUB_OFFLINE or any(isinstance(e, OfflineModeIsEnabled) for e in chain):
        return (
            "offline mode is on (HF_HUB_OFFLINE) and the Hugging Face cache does not have it; "
            "unset HF_HUB_OFFLINE to download it"
        )
    if isinstance(exc, GatedRepoError):
        return "it is gated: accept its conditions on the Hub, then log in (`hf auth login` or HF_TOKEN)"
    if isinstance(exc, RepositoryNotFoundError):
        return (
            f"no such {repo_type} repo on {constants.ENDPOINT} "
            "(a private one needs a token: `hf auth login` or HF_TOKEN)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return f"revision {revision!r} does not exist"
    if isinstance(exc, HFValidationError):
        return f"not a valid repo id ({first_line(exc)})"
    # a transport error is wrapped (LocalEntryNotFoundError "from" ConnectError): name the root cause
    root = chain[-1]
    if root is not exc:
        return f"the request to {constants.ENDPOINT} failed ({type(root).__name__}: {first_line(root)})"
    return f"{type(exc).__name__}: {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an error message (the Hub client's span several lines)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def upload_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload with hf-spamguard",
    space_sdk: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` to it; return the URL of the commit.

    ``space_sdk`` is required by the Hub for Spaces (``"gradio"``, ``"static"``...). Raises
    :class:`HubUnreachableError` (one line, "... nothing was uploaded") after one short attempt when the
    Hub cannot be reached, before and during the upload alike.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder to upload")
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
    if not is_repo_id(repo_id):
        raise ValueError(f"repo id must look like 'org/name', got {repo_id!r}")
    try:
        check_hub(repo_id, repo_type=repo_type, token=token)
    except HubUnreachableError as exc:
        raise HubUnreachableError(f"{exc}; nothing was uploaded") from exc
    api = HfApi(token=token)
    kwargs = {"space_sdk": space_sdk or "static"} if repo_type == "space" else {}
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **kwargs)
        info = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message
        )
    except Exception as exc:
        cause = _unreachable_cause(exc)
        if cause is None:
            raise
        # upload_folder makes one commit at the end: a failure before it leaves the repo as it was
        raise HubUnreachableError(
            f"cannot reach the Hub for {repo_id!r}: {_describe(cause)}; nothing was uploaded"
        ) from exc
    return str(getattr(info, "commit_url", info))
