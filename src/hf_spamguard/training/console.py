"""The fine-tuning command line: ``spamguard train`` and ``scripts/train.py`` (``accelerate launch``).

What a person sees: a short ``--help`` (this project's options, ``--config`` and the most used TRL /
transformers options; ``--help-all`` lists every one of the ~300), progress lines while the run builds,
loads and calibrates (the ``hf_spamguard.training`` logger), and a closing summary with rounded numbers
and the notes that matter (a policy target missed, a temperature fit on its bound). The full numbers
stay in the model folder's ``training_summary.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from hf_spamguard.training.args import ProjectArgs

__all__ = ["COMMON_OPTIONS", "format_help", "main", "print_result", "show_progress"]

#: TRL / transformers options shown by the short ``--help`` (``--help-all`` shows all of them).
COMMON_OPTIONS: tuple[str, ...] = (
    "model_name_or_path",
    "output_dir",
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "use_peft",
    "lora_r",
    "lora_alpha",
    "lora_target_modules",
    "load_in_4bit",
    "dtype",
    "eval_steps",
    "save_steps",
    "logging_steps",
    "resume_from_checkpoint",
    "push_to_hub",
    "hub_model_id",
    "report_to",
    "use_cpu",
    "seed",
)

_DESCRIPTION = (
    "Fine-tune Qwen3-VL on a listing dataset with TRL SFT (LoRA / 4-bit QLoRA; --backend unsloth on CUDA), "
    "then calibrate a temperature and select review/demote thresholds on the validation split, and write a "
    "pipeline-ready model folder. Options come from a YAML file (--config) and the command line (which wins)."
)
_EXAMPLES = (
    "examples:\n"
    "  {prog} --config scripts/configs/tiny-cpu.yaml                 # CPU, offline, builds what it needs\n"
    "  {prog} --config scripts/configs/qwen3-vl-2b-qlora.yaml --dataset data/listings --max_steps 200\n"
    "  accelerate launch scripts/train.py --config scripts/configs/qwen3-vl-8b-qlora.yaml   # several GPUs\n"
    "Defaults shown are this project's and this machine's (CPU/CUDA); a --config file overrides them."
)


def _display_action(*flags: str, **kwargs: Any) -> argparse.Action:
    """An argparse action for help text only (never parsed)."""
    return argparse.ArgumentParser(add_help=False).add_argument(*flags, **kwargs)


def _first_sentence(text: str) -> str:
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def _shown(action: argparse.Action, short: bool) -> argparse.Action:
    """A display copy of ``action``: one spelling (``--max_steps``, not also ``--max-steps``), and in the
    short list only the first sentence of its help."""
    shown = copy.copy(action)
    shown.option_strings = action.option_strings[:1]
    if short and isinstance(action.help, str):
        shown.help = _first_sentence(action.help)
    return shown


class _Formatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` only when there is a default worth reading."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default in (None, "", argparse.SUPPRESS) or isinstance(action, argparse._StoreTrueAction):
            return text
        if "%(default)" in text or "default:" in text.lower():
            return text
        return f"{text} (default: {default})"


def _groups(parser: argparse.ArgumentParser, full: bool) -> list[tuple[str, list[argparse.Action]]]:
    from trl import ModelConfig, SFTConfig

    primary = {
        a.dest: a for a in parser._actions if a.option_strings and a.option_strings[0] == f"--{a.dest}"
    }
    owners = [
        ("hf-spamguard options (ProjectArgs)", [f.name for f in dataclasses.fields(ProjectArgs)]),
        ("TRL SFTConfig / transformers TrainingArguments", [f.name for f in dataclasses.fields(SFTConfig)]),
        ("TRL ModelConfig (model, LoRA, quantisation)", [f.name for f in dataclasses.fields(ModelConfig)]),
    ]
    general = [
        _display_action(
            "--config", metavar="FILE.yaml", help="YAML file of options (flags given after it win)."
        ),
        _display_action("-h", "--help", action="store_true", help="This short list."),
        _display_action("--help-all", action="store_true", help="Every option, with its full help."),
    ]
    groups: list[tuple[str, list[argparse.Action]]] = [("general", general)]
    if not full:
        groups.append((owners[0][0], [_shown(primary[n], True) for n in owners[0][1] if n in primary]))
        shown = [_shown(primary[n], True) for n in COMMON_OPTIONS if n in primary]
        groups.append(("most used TRL / transformers options (all of them: --help-all)", shown))
        return groups
    seen: set[str] = set()
    for title, names in owners:
        actions = [_shown(primary[n], False) for n in names if n in primary and n not in seen]
        seen.update(a.dest for a in actions)
        groups.append((title, actions))
    return groups


def format_help(*, full: bool = False, prog: str = "spamguard train") -> str:
    """The ``--help`` text (``full``: ``--help-all``, every option grouped by where it comes from)."""
    from hf_spamguard.training.run import make_parser

    parser = make_parser()
    groups = _groups(parser, full)
    formatter = _Formatter(prog, max_help_position=34, width=100)
    formatter.add_usage(f"{prog} --config FILE.yaml [--OPTION VALUE ...]", [], [])
    formatter.add_text(_DESCRIPTION)
    for title, actions in groups:
        formatter.start_section(title)
        formatter.add_arguments(actions)
        formatter.end_section()
    n_options = sum(1 for a in parser._actions if a.option_strings and a.option_strings[0] == f"--{a.dest}")
    if not full:
        formatter.add_text(f"{n_options} options in all: {prog} --help-all")
    text = formatter.format_help()
    return text + "\n" + _EXAMPLES.format(prog=prog) + "\n"


def show_progress() -> None:
    """Print the ``hf_spamguard`` loggers' lines (progress, warnings) as plain lines on stdout."""
    log = logging.getLogger("hf_spamguard")
    if not any(getattr(h, "_spamguard_console", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._spamguard_console = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value)
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return f"{float(value):.{digits}f}"
    return "n/a"


def print_result(result: Any) -> None:
    """The closing summary of a run: where the model is, the calibration, the thresholds (and whether they
    meet the policy targets), the validation numbers, and the notes that matter."""
    if result.final_dir is None:
        return
    metrics = result.eval_metrics or {}
    th = result.thresholds or {}
    lines = [f"model folder: {result.final_dir}"]
    lines.append(f"  temperature   {result.temperature:.3g}")
    band = f"review ≥ {_num(th.get('review'))}, demote ≥ {_num(th.get('demote'))}"
    if th and th.get("review") == th.get("demote"):
        band += " (no review band: review = demote)"
    lines.append(f"  thresholds    {band}")
    if metrics:
        shown = [
            ("macro-F1 at 0.5", metrics.get("macro_f1_at_0.5")),
            ("ROC-AUC", metrics.get("roc_auc")),
            ("PR-AUC", metrics.get("pr_auc")),
            ("ECE", metrics.get("ece")),
        ]
        lines.append("  validation    " + " | ".join(f"{name} {_num(v)}" for name, v in shown))
        at = [
            ("demote precision", metrics.get("demote_precision")),
            ("spam recall", metrics.get("flagged_recall")),
            ("review load", metrics.get("review_load")),
        ]
        lines.append("  at thresholds " + " | ".join(f"{name} {_num(v)}" for name, v in at))
    if result.policy_notes and not result.targets_met:
        lines.append("Policy targets NOT met:")
        lines += [f"  - {note}" for note in result.policy_notes]
    for warning in result.warnings:
        lines.append(f"Note: {warning}")
    others = [n for n in result.notes if n not in result.warnings and not n.startswith("temperature ")]
    if others:
        lines.append("Notes:")
        lines += [f"  - {note}" for note in others]
    lines.append(f"Full numbers: {result.final_dir / 'training_summary.json'}")
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None, *, prog: str = "spamguard train") -> Any:
    """Entry point of ``spamguard train`` and ``scripts/train.py``: help, or parse and train, then the
    summary. Returns the :class:`~hf_spamguard.training.run.TrainResult` (``None`` for help)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help-all" in args:
        print(format_help(full=True, prog=prog))
        return None
    if "-h" in args or "--help" in args:
        print(format_help(full=False, prog=prog))
        return None
    from hf_spamguard.training.run import parse_args, train

    show_progress()
    result = train(*parse_args(args))
    print_result(result)
    return result
