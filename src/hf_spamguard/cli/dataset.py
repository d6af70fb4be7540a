"""``spamguard dataset``: build a dataset from TSV + images, push it to the Hub."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    dataset_app = typer.Typer(help="Build listing datasets from TSV + images and publish them.", no_args_is_help=True)
    app.add_typer(dataset_app, name="dataset")
    # Commands are defined by the dataset builder issue (#2).
