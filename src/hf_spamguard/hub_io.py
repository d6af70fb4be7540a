"""The one place that talks to the Hub: uploads (``create_repo`` + ``upload_folder``) and downloads.

Ground floor: every publisher (datasets, models, the metric Space, baselines) calls
:func:`upload_folder_to_hub`, and every loader of a spamguard folder (baselines, students, ``predict``)
calls :func:`local_folder`, so authentication, caching and error messages are the same for all.
huggingface_hub is imported inside the functions: the baseline CLI must start without heavy imports.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

REPO_TYPES = ("model", "dataset", "space")
# What the Hub accepts as "namespace/name"; anything else is left to the caller as a local path.
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9_][\w.-]*")


def is_repo_id(text: str | os.PathLike[str]) -> bool:
    """``text`` has the form of a Hub repo id (``namespace/name``); whether a local path of that name
    exists is the caller's question."""
    return bool(_REPO_ID.fullmatch(os.fspath(text)))


def local_folder(
    name_or_path: str | os.PathLike[str],
    *,
    repo_type: str = "model",
    token: str | None = None,
    revision: str | None = None,
) -> Path:
    """A local folder for ``name_or_path``: the path itself when it exists, else the Hub snapshot of it.

    A path that does not exist and looks like a Hub repo id (``org/name``) is downloaded with
    ``huggingface_hub.snapshot_download`` into the Hugging Face cache (``HF_HUB_CACHE``), so a second
    call reuses the cached snapshot, offline included. Anything else is returned unchanged, so callers
    keep their own "no such folder" errors. Raises ``FileNotFoundError`` (one line: the id, that it is
    not a local folder, and the Hub's reason) when the repo cannot be downloaded.
    """
    path = Path(name_or_path)
    text = os.fspath(name_or_path)
    if path.exists() or not is_repo_id(text):
        return path
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    # OSError covers the Hub client's own errors (HfHubHTTPError, LocalEntryNotFoundError, offline mode)
    # and requests' transport errors; the httpx transports of huggingface_hub >= 1.0 raise non-OSErrors.
    transport = tuple(m.HTTPError for name in ("httpx", "httpx2") if (m := sys.modules.get(name)) is not None)
    try:
        folder = snapshot_download(text, repo_type=repo_type, revision=revision, token=token)
    except (OSError, HFValidationError, *transport) as exc:
        raise FileNotFoundError(
            f"{text}: not a local folder, and downloading it from the Hub ({repo_type} repo) failed: "
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

    ``space_sdk`` is required by the Hub for Spaces (``"gradio"``, ``"static"``...).
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder to upload")
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
    if not is_repo_id(repo_id):
        raise ValueError(f"repo id must look like 'org/name', got {repo_id!r}")
    api = HfApi(token=token)
    kwargs = {"space_sdk": space_sdk or "static"} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **kwargs)
    info = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message
    )
    return str(getattr(info, "commit_url", info))
