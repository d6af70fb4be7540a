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


def number_in(
    option: str,
    *,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
) -> Callable[[Any], Any]:
    """A typer callback refusing a number outside the range (ends inclusive unless ``*_open``) and any
    NaN or infinity (which get past click's own ranges) as a usage error naming ``option``."""
    import math

    import typer

    def check(value: Any) -> Any:
        if value is None:
            return value
        ok = math.isfinite(value)
        ok = ok and (min is None or value > min or (value == min and not min_open))
        ok = ok and (max is None or value < max or (value == max and not max_open))
        if not ok:
            span = (
                f"{'(' if min_open else '['}{'-inf' if min is None else min}, "
                f"{'inf' if max is None else max}{')' if max_open else ']'}"
            )
            raise typer.BadParameter(f"{value} is outside {span}", param_hint=option)
        return value

    return check


@contextlib.contextmanager
def os_errors(action: str, hint: str = "") -> Iterator[None]:
    """Turn an ``OSError`` of the file system (a full disk, no permission...) into one line:
    ``"<action>: <reason> (<file>)<hint>"``; a full disk adds "free some space and run again". Errors
    that :func:`user_errors` already reports in one line (missing files, locked jobs) pass through."""
    import errno
    import os

    try:
        yield
    except (FileNotFoundError, FileExistsError, NotADirectoryError):
        raise
    except OSError as exc:
        if exc.errno is None:  # not the file system's (e.g. the Hub client's errors)
            raise
        # the OS's wording: some writers (pyarrow) wrap it in several lines of their own
        reason = os.strerror(exc.errno)
        where = f" ({exc.filename})" if exc.filename else ""
        extra = "; free some space and run again" if exc.errno == errno.ENOSPC else ""
        raise UserError(f"{action}: {reason[:1].lower()}{reason[1:]}{where}{hint}{extra}") from exc


@contextlib.contextmanager
def upload_errors(what: str, repo_id: str | None) -> Iterator[None]:
    """Turn a failed upload (``HfHubHTTPError``, ``OfflineModeIsEnabled`` and connection errors are all
    ``OSError``s) into one line, with a hint when offline mode is what stopped it. A missing local
    folder (``FileNotFoundError``) passes through to :func:`user_errors` as it is."""
    from hf_spamguard.hub_io import HubUnreachableError, first_line

    try:
        yield
    except HubUnreachableError as exc:
        raise UserError(f"upload of the {what} to {repo_id} failed: {exc}") from exc
    except FileNotFoundError:
        raise
    except OSError as exc:
        first = first_line(exc)
        hint = " (unset HF_HUB_OFFLINE to upload)" if "offline" in first.lower() else ""
        raise UserError(f"upload of the {what} to {repo_id} failed: {first}{hint}") from exc
