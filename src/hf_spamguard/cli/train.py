"""``spamguard train``: fine-tune Qwen3-VL (the same function as ``scripts/train.py``)."""

from __future__ import annotations

import typer

from hf_spamguard.cli._common import user_errors

HELP = (
    "Fine-tune Qwen3-VL on a listing dataset with TRL SFT (LoRA / 4-bit QLoRA; --backend unsloth on CUDA). "
    "Options are those of scripts/train.py: --config FILE.yaml plus any override, e.g. "
    "`spamguard train --config scripts/configs/tiny-cpu.yaml --max_steps 20`. "
    "`spamguard train --help` lists the common options, `--help-all` every one. For several GPUs use "
    "`accelerate launch scripts/train.py ...`."
)


def register(app: typer.Typer) -> None:
    @app.command(
        "train",
        help=HELP,
        context_settings={
            "allow_extra_args": True,
            "ignore_unknown_options": True,
            # -h, --help and --help-all all reach the training parser's own help (training.console).
            "help_option_names": [],
        },
    )
    @user_errors
    def train_command(ctx: typer.Context) -> None:
        args = list(ctx.args) or ["--help"]
        if not {"-h", "--help", "--help-all"} & set(args):
            # First, before training.run imports trl / transformers: Unsloth must patch them before their
            # classes are used (a no-op unless --backend unsloth runs on CUDA).
            from hf_spamguard.training.backends import preimport_unsloth

            preimport_unsloth(args)
        from hf_spamguard.training.console import main

        main(args, prog="spamguard train")
