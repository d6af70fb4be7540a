"""Command-line options generated from the config dataclasses, so each option is declared once.

A config field becomes ``--field-name`` with the field's type, default and ``metadata["help"]``. Optional
metadata the generator reads:

- ``"choices"``: the accepted values (shown in ``--help``, checked by the parser);
- ``"min"`` / ``"max"`` (numbers): the accepted range, inclusive; ``"min_open"`` / ``"max_open"`` make
  that end exclusive (a fraction in (0, 1) is ``min=0, max=1, min_open=True, max_open=True``);
- ``"cli"``: ``{"type": T, "parse": f, "format": g, "flag": "--x/--no-x", "metavar": "..."}`` when the
  command line spells a value differently from Python (``"parse"`` turns the typed ``T`` into the field's
  value, ``"format"`` the default back into text); ``"parse": "floats"`` is comma-separated positive
  numbers (for configs below the CLI, which cannot import a parser from here);
- ``"cli_exclude": True``: not an option (set by the command itself).

The decorated command receives the built config as its first argument; its own extra parameters (e.g.
``--progress``) are declared on it as usual and come after the generated ones in ``--help``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

_MISSING = dataclasses.MISSING


def _cli_type(hint: Any) -> Any:
    """The type typer parses for a field's type hint (``X | None`` stays optional)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _cli_type(args[0]) | None
        # e.g. ``float | dict[str, float]``: the command line gives text, metadata["cli"] parses it
        return str
    if origin in (tuple, list):
        return str
    return hint


def _cli_meta(field: dataclasses.Field) -> dict[str, Any]:
    cli = dict(field.metadata.get("cli", {}))
    if cli.get("parse") == "floats":
        option = cli.get("flag", "--" + field.name.replace("_", "-")).lstrip("-")
        cli["parse"] = functools.partial(parse_floats, option=option)
        cli.setdefault("format", lambda values: ",".join(f"{v:g}" for v in values))
    return cli


def _option(field: dataclasses.Field, hint: Any) -> tuple[Any, Any]:
    """``(annotation, default)`` of the generated parameter for ``field``."""
    meta = field.metadata
    if "help" not in meta:
        raise TypeError(f"config field {field.name!r} has no metadata['help']: every option needs one")
    cli = _cli_meta(field)
    annotation = cli.get("type", _cli_type(hint))
    help_text = meta["help"]
    if "choices" in meta:
        help_text += f" One of: {', '.join(map(str, meta['choices']))}."
    kwargs: dict[str, Any] = {"help": help_text, "show_default": True}
    name = field.name.replace("_", "-")
    default_decl = f"--{name}/--no-{name}" if annotation is bool else f"--{name}"
    decls = [cli.get("flag", default_decl)]
    if "choices" in meta or "min" in meta or "max" in meta:
        kwargs["callback"] = _checker(decls[0].split("/")[0], meta)
    if "metavar" in cli:
        kwargs["metavar"] = cli["metavar"]
    if field.default is not _MISSING:
        default = field.default
    elif field.default_factory is not _MISSING:  # type: ignore[misc]
        default = field.default_factory()  # type: ignore[misc]
    else:
        default = inspect.Parameter.empty
    if default is not inspect.Parameter.empty and "format" in cli:
        default = cli["format"](default)
    if isinstance(default, Path):
        default = str(default)
    return Annotated[annotation, typer.Option(*decls, **kwargs)], default


def _checker(option: str, meta: Any) -> Callable[[Any], Any]:
    """A typer callback refusing a value outside the field's ``choices`` / range, naming the option."""

    def check(value: Any) -> Any:
        return _check(option, meta, value)

    return check


def _check(option: str, meta: Any, value: Any) -> Any:
    if value is None:
        return value
    if "choices" in meta and value not in meta["choices"]:
        raise typer.BadParameter(
            f"{value!r} is not one of {', '.join(map(str, meta['choices']))}", param_hint=option
        )
    lo, hi = meta.get("min"), meta.get("max")
    lo_open, hi_open = meta.get("min_open", False), meta.get("max_open", False)
    if (lo is not None and (value < lo or (lo_open and value == lo))) or (
        hi is not None and (value > hi or (hi_open and value == hi))
    ):
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        span = f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
        raise typer.BadParameter(f"{value} is outside {span}", param_hint=option)
    return value


def config_fields(config_cls: type) -> list[dataclasses.Field]:
    """The fields of ``config_cls`` that become options (in declaration order)."""
    return [f for f in dataclasses.fields(config_cls) if f.init and not f.metadata.get("cli_exclude")]


def config_options(*config_classes: type, exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorate ``command(config_a, config_b, ..., **own_options)``: the command gets one option per field
    of each config class (field names must be unique across them) and receives the built configs."""
    groups = []
    for cls in config_classes:
        hints = typing.get_type_hints(cls)
        groups.append((cls, hints, [f for f in config_fields(cls) if f.name not in exclude]))

    def decorate(command: F) -> F:
        own = list(inspect.signature(command, eval_str=True).parameters.values())[len(groups) :]
        generated = []
        for _cls, hints, fields in groups:
            for f in fields:
                annotation, default = _option(f, hints[f.name])
                generated.append(
                    inspect.Parameter(
                        f.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
                    )
                )
        names = [p.name for p in generated]
        if len(set(names)) != len(names) or set(names) & {p.name for p in own}:
            raise TypeError(f"{command.__name__}: an option is declared twice ({names})")
        # Required options first: Python signatures (and typer) want them before the defaulted ones.
        generated.sort(key=lambda p: p.default is not inspect.Parameter.empty)
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            configs = []
            for cls, _hints, fields in groups:
                values = {}
                for f in fields:
                    value = kwargs.pop(f.name)
                    parse = _cli_meta(f).get("parse")
                    if parse is not None and value is not None:
                        try:
                            value = parse(value)
                        except ValueError as exc:  # a usage error (exit 2), like a bad number
                            raise typer.BadParameter(str(exc)) from None
                    values[f.name] = value
                configs.append(cls(**values))
            return command(*configs, **kwargs)

        wrapper.__signature__ = inspect.Signature(generated + own)  # type: ignore[attr-defined]
        # typer reads annotations through typing.get_type_hints(wrapper): give it the generated ones.
        wrapper.__annotations__ = {p.name: p.annotation for p in generated + own}
        return wrapper  # type: ignore[return-value]

    return decorate


def parse_floats(text: str, option: str = "value") -> tuple[float, ...]:
    """``"0.3,1,3"`` → ``(0.3, 1.0, 3.0)``: comma-separated positive numbers."""
    try:
        values = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError as exc:
        raise ValueError(f"--{option}: expected comma-separated numbers, got {text!r}") from exc
    if not values or min(values) <= 0:
        raise ValueError(f"--{option}: expected positive numbers, got {text!r}")
    return values
