"""The ``spamguard`` command line. Thin: every command calls the package API.

Each command group lives in its own module of this package and is registered here.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="spamguard",
    help="Keyword-spam moderation for marketplace listings: datasets, training, prediction, evaluation, "
    "labelling and publishing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain error output: rich's box truncates long messages, losing the file/line/field they name.
    rich_markup_mode=None,
)

# Modules that add commands to ``app`` when imported (``register(app)``). Order = order in --help.
_COMMAND_MODULES = (
    "dataset",  # spamguard dataset build / push
    "baseline",  # spamguard baseline train
    "predict",  # spamguard predict / evaluate
    "train",  # spamguard train
    "reviews",  # spamguard label / distill / score
    "publish",  # spamguard publish / demo
)

for _name in _COMMAND_MODULES:
    importlib.import_module(f"hf_spamguard.cli.{_name}").register(app)


def main() -> None:
    """Console-script entry point. User errors (:class:`~hf_spamguard.cli._common.UserError`) print one
    line on stderr and exit with code 1."""
    import logging

    # bitsandbytes (imported by peft) warns on every CPU start that it cannot fetch an optional kernel
    # from the Hub and asks for `pip install kernels`; the CPU paths here never use that kernel, and
    # the advice would not work offline anyway. Only the command line silences it; library users keep
    # their own logging configuration.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
