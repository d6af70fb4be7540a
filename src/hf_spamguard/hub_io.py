"""The one place that talks to the Hub's upload endpoints (``create_repo`` + ``upload_folder``).

Ground floor: every publisher (datasets, models, the metric Space, baselines) calls
:func:`upload_folder_to_hub`, so authentication, repo creation and error messages are the same for all.
"""

from __future__ import annotations

from pathlib import Path

REPO_TYPES = ("model", "dataset", "space")


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
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo id must look like 'org/name', got {repo_id!r}")
    api = HfApi(token=token)
    kwargs = {"space_sdk": space_sdk or "static"} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **kwargs)
    info = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message
    )
    return str(getattr(info, "commit_url", info))
