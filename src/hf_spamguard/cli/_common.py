"""Helpers shared by the command modules."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def upload_errors(what: str, repo_id: str | None) -> Iterator[None]:
    """Turn a failed upload (``HfHubHTTPError``, ``OfflineModeIsEnabled`` and connection errors are all
    ``OSError``s) into one line, with a hint when offline mode is what stopped it. A missing local
    folder (``FileNotFoundError``) passes through to :func:`user_errors` as it is."""
    from hf_spamguard.hub_io import first_line

    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        first = first_line(exc)
        hint = " (unset HF_HUB_OFFLINE to upload)" if "offline" in first.lower() else ""
        raise UserError(f"upload of the {what} to {repo_id} failed: {first}{hint}") from exc
