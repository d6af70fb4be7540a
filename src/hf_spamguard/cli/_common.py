"""Helpers shared by the command modules."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

# typer >= 0.29 vendors its own click and only catches its own ClickException; fall back for older typer.
try:
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - typer < 0.29
    from click import ClickException

F = TypeVar("F", bound=Callable[..., Any])


class UserError(ClickException):
    """An error caused by the user's input: printed as one line (``Error: ...``), exit code 1, no traceback."""

    exit_code = 1


def user_errors(func: F) -> F:
    """Turn the package's input errors (``ValueError``, ``FileNotFoundError``...) into :class:`UserError`.

    Use on every command so that bad input gives a one-line message instead of a traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, KeyError) as exc:
            raise UserError(str(exc) if not isinstance(exc, KeyError) else f"missing key {exc}") from exc

    return wrapper  # type: ignore[return-value]


def hub_failure(what: str, repo_id: str | None, exc: OSError) -> UserError:
    """One line for a failed upload (``HfHubHTTPError``, ``OfflineModeIsEnabled``, connection errors are
    all ``OSError``s), with a hint when offline mode is what stopped it."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = " (unset HF_HUB_OFFLINE to upload)" if "offline" in first.lower() else ""
    return UserError(f"upload of the {what} to {repo_id} failed: {first}{hint}")
