"""Fine-tuning Qwen3-VL for listing spam with TRL SFT (LoRA / 4-bit QLoRA; Unsloth optional).

- :mod:`~hf_spamguard.training.args`: :class:`ProjectArgs` and the CPU / CUDA defaults;
- :mod:`~hf_spamguard.training.formatting`: dataset rows → conversations (shared prompt builder);
- :mod:`~hf_spamguard.training.backends`: transformers + peft + bitsandbytes, or Unsloth;
- :mod:`~hf_spamguard.training.trainer`: the ``SFTTrainer`` subclass (loss weights, policy-metric evaluation);
- :mod:`~hf_spamguard.training.run`: :func:`train` (data, model, SFT, calibration, model folder);
- :mod:`~hf_spamguard.training.console`: :func:`main`, the command line of ``scripts/train.py`` and
  ``spamguard train`` (short ``--help`` / ``--help-all``, progress lines, closing summary).

Importing this package does not import torch; the heavy modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hf_spamguard.training.args import BACKENDS, SPLIT_VOTE_MODES, ProjectArgs, device_defaults

if TYPE_CHECKING:
    from hf_spamguard.training.run import TrainResult

__all__ = [
    "BACKENDS",
    "SPLIT_VOTE_MODES",
    "ProjectArgs",
    "TrainResult",
    "device_defaults",
    "main",
    "parse_args",
    "train",
]


def train(project: ProjectArgs, sft_args: Any, model_args: Any) -> TrainResult:
    """Fine-tune and write the model folder (:func:`hf_spamguard.training.run.train`)."""
    from hf_spamguard.training.run import train as _train

    return _train(project, sft_args, model_args)


def parse_args(argv: list[str] | None = None) -> tuple[Any, Any, Any]:
    """Parse ``--config file.yaml`` plus overrides into (ProjectArgs, SFTConfig, ModelConfig)."""
    from hf_spamguard.training.run import parse_args as _parse

    return _parse(argv)


def main(argv: list[str] | None = None, *, prog: str = "spamguard train") -> TrainResult | None:
    """Parse the arguments and train (entry point of ``scripts/train.py`` and ``spamguard train``);
    ``--help`` / ``--help-all`` print the options instead (``None`` returned)."""
    from hf_spamguard.training.console import main as _main

    return _main(argv, prog=prog)


def __getattr__(name: str) -> Any:
    if name == "TrainResult":
        from hf_spamguard.training.run import TrainResult

        return TrainResult
    raise AttributeError(name)
