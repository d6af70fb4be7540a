"""``spamguard dataset``: build a dataset from TSV + images, push it to the Hub."""

from __future__ import annotations

import re
import tempfile
import warnings
from pathlib import Path
from typing import Annotated

import typer

from hf_spamguard.cli._common import UserError, number_in, os_errors, upload_errors, user_errors

# A Hub license id (``cc-by-4.0``, ``apache-2.0``, ``other``...): lower case, digits, ``.``, ``-``, ``+``.
_LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")
LICENSE_HELP = (
    "License of the data, as a Hub license id (cc-by-4.0, cc-by-nc-4.0, apache-2.0, ...), written to the "
    "dataset card. Default: the folder's card's, else 'other' (the card then says how to set it)."
)


def _license_id(value: str | None) -> str | None:
    if value is not None and not _LICENSE_ID.fullmatch(value):
        raise typer.BadParameter(f"{value!r} is not a Hub license id (like cc-by-4.0 or apache-2.0)")
    return value


def _positive_seconds(value: float) -> float:
    """``--timeout`` must be a positive, finite number of seconds (NaN gets past click's ranges)."""
    return number_in("--timeout", min=0, min_open=True)(value)


@user_errors
def build(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the dataset to (Hub layout).")],
    train: Annotated[
        Path | None, typer.Option("--train", help="Training TSV (product_id, image_url, description, ...).")
    ] = None,
    validation: Annotated[
        Path | None, typer.Option("--validation", help="Validation TSV; when omitted, carved from --train.")
    ] = None,
    test: Annotated[Path | None, typer.Option("--test", help="Test TSV (optional).")] = None,
    image_dir: Annotated[
        Path | None, typer.Option("--image-dir", help="Folder with <product_id>.jpg|jpeg|png|webp images.")
    ] = None,
    fetch_images: Annotated[
        bool, typer.Option("--fetch-images", help="Download image_url for listings without a local image.")
    ] = False,
    demo: Annotated[
        bool, typer.Option("--demo", help="Build the bundled synthetic demo listings instead of --train.")
    ] = False,
    validation_size: Annotated[
        float,
        typer.Option(
            help="Fraction of train carved as validation when no --validation is given, in [0, 1) "
            "(0: no validation split).",
            callback=number_in("--validation-size", min=0, max=1, max_open=True),
        ),
    ] = 0.1,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the stratified validation split (≥ 0).", callback=number_in("--seed", min=0)
        ),
    ] = 42,
    max_workers: Annotated[
        int, typer.Option(help="Parallel image downloads (≥ 1).", callback=number_in("--max-workers", min=1))
    ] = 16,
    timeout: Annotated[
        float,
        typer.Option(
            help="Deadline in seconds for each image request as a whole (connect, headers, body), "
            "per attempt.",
            callback=_positive_seconds,
        ),
    ] = 10.0,
    allow_private_networks: Annotated[
        bool,
        typer.Option(
            "--allow-private-networks",
            help="Let --fetch-images reach loopback, private and link-local addresses (intranet image "
            "hosts). Off by default: such URLs fail with 'refused: private address'.",
        ),
    ] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="datasets cache (default: HF_DATASETS_CACHE); images under it.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Rebuild even when the datasets cache holds this build, e.g. to retry failed image "
            "downloads (images already fetched stay cached).",
        ),
    ] = False,
    license: Annotated[str | None, typer.Option("--license", help=LICENSE_HELP, callback=_license_id)] = None,
) -> None:
    """Validate listing TSV(s), attach images and write Parquet + dataset card to --out.

    Image failures never stop the build: those listings get no image and a row in image_status.csv.
    Labels that disagree with the rater-vote majority are kept and reported. The new folder replaces
    --out only when it is complete: a failed build leaves the previous dataset there as it was. A
    second build into the same --out while one runs stops at once, naming the running one's pid.
    """
    from hf_spamguard.data import LabelDisagreementWarning, build_dataset, save_dataset
    from hf_spamguard.data.hub_layout import check_output_folder
    from hf_spamguard.data.synthetic import write_demo
    from hf_spamguard.jobs import job_lock

    if demo and train is not None:
        raise UserError("use either --demo or --train, not both")
    if not demo and train is None:
        raise UserError("missing --train TSV (or pass --demo to build the bundled demo listings)")
    # The lock first: a second build into the same --out stops before doing any work.
    with (
        job_lock(out),
        os_errors(f"cannot build the dataset {out}", " (the previous dataset there is unchanged)"),
        tempfile.TemporaryDirectory(prefix="spamguard-demo-") as tmp,
    ):
        check_output_folder(out)  # before the build, not after it
        if demo:
            source = write_demo(tmp)
            train, validation, test = source / "train.tsv", source / "validation.tsv", source / "test.tsv"
            image_dir = image_dir or source / "images"
        with warnings.catch_warnings():
            # The disagreements are printed below as part of the build report, once.
            warnings.simplefilter("ignore", LabelDisagreementWarning)
            dd = build_dataset(
                train=train,
                validation=validation,
                test=test,
                image_dir=image_dir,
                fetch_images=fetch_images,
                validation_size=validation_size,
                seed=seed,
                cache_dir=cache_dir,
                max_workers=max_workers,
                image_timeout=timeout,
                allow_private_networks=allow_private_networks,
                force=force,
            )
        save_dataset(dd, out, license=license, lock=False)  # the lock is held above
    report = dd.build_report
    typer.echo(", ".join(f"{split}: {len(ds)} rows" for split, ds in dd.items()))
    typer.echo(report.summary())
    typer.echo(f"wrote {out} (load it with datasets.load_dataset({str(out)!r}))")


@user_errors
def push(
    folder: Annotated[Path, typer.Argument(help="A folder written by `spamguard dataset build`.")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub dataset repo, e.g. my-org/listings.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
    token: Annotated[
        str | None,
        typer.Option(help="Hub token (default: HF_TOKEN or the cached login).", show_default=False),
    ] = None,
    license: Annotated[
        str | None,
        typer.Option(
            "--license",
            help="Set the card's license (a Hub license id such as cc-by-4.0) before uploading; the "
            "folder's card is rendered again with it. Default: keep the card's.",
            callback=_license_id,
        ),
    ] = None,
) -> None:
    """Upload a built dataset folder to the Hugging Face Hub (create_repo + upload_folder)."""
    from hf_spamguard.data import push_dataset

    with upload_errors("dataset", repo_id):
        url = push_dataset(folder, repo_id, private=private, token=token, license=license)
    typer.echo(f"pushed {folder} to https://huggingface.co/datasets/{repo_id} ({url})")


def register(app: typer.Typer) -> None:
    dataset_app = typer.Typer(
        help="Build listing datasets from TSV + images and publish them.", no_args_is_help=True
    )
    dataset_app.command("build")(build)
    dataset_app.command("push")(push)
    app.add_typer(dataset_app, name="dataset")
