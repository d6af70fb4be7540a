"""Model backends for fine-tuning: transformers + peft + bitsandbytes (default) and Unsloth (CUDA only).

A backend returns a :class:`TrainingModel`: the model to train (fresh from disk: a 4-bit model that ran
inference before training silently stops learning on CPU), its processor, the peft config for TRL to apply
(or ``None`` when the backend wrapped the model itself) and, for Unsloth, its data collator.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hf_spamguard.training.args import (
    DEFAULT_LORA_TARGET,
    QUANT_SKIP_MODULES,
    ProjectArgs,
    cuda_available,
)


class BackendError(ValueError):
    """A backend cannot run here (no CUDA for Unsloth, a missing optional package, a bad combination)."""


@dataclass
class TrainingModel:
    """What a backend hands to the trainer."""

    model: Any
    processor: Any
    backend: str
    peft_config: Any = None
    quantized: bool = False
    data_collator: Any = None
    #: SFTConfig attributes the backend needs (Unsloth's recommended settings).
    sft_overrides: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def check_backend(backend: str, *, cuda: bool) -> None:
    """Fail fast, before any model is loaded, when ``backend`` cannot run on this machine."""
    if backend == "unsloth":
        if not cuda:
            raise BackendError(
                "backend 'unsloth' needs a CUDA GPU: Unsloth cannot run vision models on CPU. "
                "Use --backend transformers (LoRA in float32, or 4-bit with --load_in_4bit) on this machine."
            )
        try:
            import unsloth  # noqa: F401
        except ImportError as exc:
            raise BackendError(
                "backend 'unsloth' needs the unsloth package: pip install -e '.[unsloth]' "
                f"(in its own environment, see README) ({exc})"
            ) from exc
    elif backend != "transformers":
        raise BackendError(f"unknown backend {backend!r}: expected 'transformers' or 'unsloth'")


def _requested(argv: Sequence[str], name: str) -> Any:
    """The value of ``--name`` as the training parser will see it: the last flag on the command line, else
    the ``--config`` YAML's key, else ``None``. A peek, not a parse: ``TrlParser`` imports trl and
    transformers, which is exactly what :func:`preimport_unsloth` must run before."""
    value: Any = None
    flag = f"--{name}"
    for i, arg in enumerate(argv):
        if arg == flag:
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            # A bare boolean flag (`--use_cpu`) means true, as in HfArgumentParser.
            value = True if nxt is None or nxt.startswith("--") else nxt
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    if value is not None:
        return value
    if "--config" in argv and argv.index("--config") + 1 < len(argv):
        import yaml

        try:
            with open(argv[argv.index("--config") + 1], encoding="utf-8") as fh:
                config = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError):
            return None  # the real parser reports a bad config; the peek just finds nothing
        if isinstance(config, dict):
            return config.get(name)
    return None


def requested_backend(argv: Sequence[str] | None = None) -> str:
    """The ``backend`` a training command line selects (``--backend``, else the config's, else
    :class:`ProjectArgs`' default), read without importing trl or transformers."""
    argv = list(sys.argv[1:] if argv is None else argv)
    value = _requested(argv, "backend")
    if value is None:
        return next(f.default for f in dataclasses.fields(ProjectArgs) if f.name == "backend")
    return str(value)


def preimport_unsloth(argv: Sequence[str] | None = None) -> bool:
    """Import Unsloth now when this training run will use it; ``True`` when it is imported.

    Unsloth patches transformers, peft and trl when it is imported, and only classes created after that
    get the patches, so it has to come before anything imports them (``training.run`` and
    ``training.trainer`` import trl). The entry points (``scripts/train.py``, ``spamguard train``) call
    this first thing. It imports only torch and unsloth, and only when the run selects
    ``--backend unsloth`` on a CUDA machine (``--use_cpu`` unset, as :func:`~hf_spamguard.training.run.train`
    decides) with unsloth installed; elsewhere it does nothing and :func:`check_backend` explains later
    what is missing.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if requested_backend(argv) != "unsloth":
        return False
    use_cpu = _requested(argv, "use_cpu")
    if use_cpu is True or str(use_cpu).lower() in ("true", "1", "yes", "y", "t"):
        return False
    # After the backend check: the default backend must not pay for importing torch here.
    if not cuda_available():
        return False
    if "transformers" in sys.modules and "unsloth" not in sys.modules:
        import warnings

        warnings.warn(
            "transformers was imported before unsloth: some Unsloth patches may not apply; call "
            "hf_spamguard.training.backends.preimport_unsloth() before importing transformers",
            stacklevel=2,
        )
    try:
        import unsloth  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_dtype(name: str | None, *, cuda: bool) -> Any:
    import torch

    if name in (None, "auto"):
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if not cuda and name != "float32":
        # Half precision on CPU is slow and loses accuracy; CPU runs train in float32.
        return torch.float32
    return getattr(torch, name)


def lora_config(model_args: Any) -> Any:
    """The peft ``LoraConfig`` from TRL's ``ModelConfig``; language-model projections when no targets given."""
    from trl import get_peft_config

    if model_args.lora_target_modules is None:
        model_args.lora_target_modules = DEFAULT_LORA_TARGET
    return get_peft_config(model_args)


def quantization_config(model_args: Any, compute_dtype: Any) -> Any:
    """A bitsandbytes config for ``--load_in_4bit`` / ``--load_in_8bit``, or ``None``."""
    if not (model_args.load_in_4bit or model_args.load_in_8bit):
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise BackendError(
            f"--load_in_4bit/--load_in_8bit need bitsandbytes: pip install -e '.[qlora]' ({exc})"
        ) from exc
    from transformers import BitsAndBytesConfig

    if model_args.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(QUANT_SKIP_MODULES))
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=model_args.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=model_args.use_bnb_nested_quant,
        bnb_4bit_compute_dtype=compute_dtype,
        bnb_4bit_quant_storage=model_args.bnb_4bit_quant_storage,
        # Layers with fewer than 64 inputs fail in the 4-bit kernels (the vision tower's), and a
        # quantised lm_head hurts the label logits the scoring pass reads.
        llm_int8_skip_modules=list(QUANT_SKIP_MODULES),
    )


def load_transformers_backend(model_args: Any, sft_args: Any, *, cuda: bool) -> TrainingModel:
    """transformers + peft (+ bitsandbytes): LoRA in float32 on CPU, QLoRA (NF4, bf16 compute) on CUDA."""
    from transformers import AutoModelForImageTextToText

    from hf_spamguard.modeling import load_processor

    path = model_args.model_name_or_path
    if not path:
        raise ValueError("model_name_or_path is required (a Hub id or a local model folder)")
    dtype = _torch_dtype(model_args.dtype, cuda=cuda)
    quant = quantization_config(model_args, dtype)
    if quant is not None and not model_args.use_peft:
        raise BackendError("a 4-bit/8-bit model can only be trained with LoRA: set use_peft: true")
    kwargs: dict[str, Any] = {"dtype": dtype, "revision": model_args.model_revision}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    if quant is not None:
        kwargs["quantization_config"] = quant
        if cuda:
            from accelerate import PartialState

            # One full copy per process (DDP); "auto" would split the model across the GPUs instead.
            kwargs["device_map"] = {"": PartialState().local_process_index}
    processor = load_processor(path)
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    model.config.use_cache = False
    notes = [f"backend transformers, dtype {str(dtype).removeprefix('torch.')}, {'CUDA' if cuda else 'CPU'}"]
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=bool(sft_args.gradient_checkpointing),
            gradient_checkpointing_kwargs=sft_args.gradient_checkpointing_kwargs,
        )
        notes.append("4-bit NF4" if model_args.load_in_4bit else "8-bit")
    peft_config = lora_config(model_args) if model_args.use_peft else None
    return TrainingModel(
        model=model,
        processor=processor,
        backend="transformers",
        peft_config=peft_config,
        quantized=quant is not None,
        notes=notes,
    )


def load_unsloth_backend(
    model_args: Any, sft_args: Any, project: ProjectArgs, *, cuda: bool
) -> TrainingModel:
    """Unsloth's ``FastVisionModel`` with its recommended settings (CUDA only; untested without a GPU)."""
    check_backend("unsloth", cuda=cuda)
    from unsloth import FastVisionModel  # must come before transformers' models are built
    from unsloth.trainer import UnslothVisionDataCollator

    model, processor = FastVisionModel.from_pretrained(
        model_args.model_name_or_path,
        load_in_4bit=bool(model_args.load_in_4bit),
        use_gradient_checkpointing="unsloth" if sft_args.gradient_checkpointing else False,
    )
    target = model_args.lora_target_modules
    model = FastVisionModel.get_peft_model(
        model,
        # Listings are mostly text-only: the vision tower stays frozen, like the transformers backend.
        finetune_vision_layers=False,
        finetune_language_layers=True,
        finetune_attention_modules=True,
        finetune_mlp_modules=True,
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        bias="none",
        random_state=sft_args.seed,
        use_rslora=model_args.use_rslora,
        **({"target_modules": target} if target else {}),
    )
    FastVisionModel.for_training(model)
    try:
        collator = UnslothVisionDataCollator(
            model,
            processor,
            train_on_responses_only=bool(sft_args.assistant_only_loss),
            instruction_part="<|im_start|>user\n",
            response_part="<|im_start|>assistant\n",
        )
    except TypeError:  # older unsloth without train_on_responses_only
        collator = UnslothVisionDataCollator(model, processor)
    return TrainingModel(
        model=model,
        processor=processor,
        backend="unsloth",
        peft_config=None,
        quantized=bool(model_args.load_in_4bit),
        data_collator=collator,
        # Unsloth's documented settings for vision fine-tuning: its collator does the preprocessing.
        sft_overrides={
            "remove_unused_columns": False,
            "dataset_text_field": "",
            "dataset_kwargs": {"skip_prepare_dataset": True},
            "assistant_only_loss": False,
        },
        notes=["backend unsloth (FastVisionModel)"],
    )


def load_for_training(model_args: Any, sft_args: Any, project: ProjectArgs, *, cuda: bool) -> TrainingModel:
    """Load the model to fine-tune with the backend ``project.backend`` (fails fast where it cannot run)."""
    check_backend(project.backend, cuda=cuda)
    if project.backend == "unsloth":
        return load_unsloth_backend(model_args, sft_args, project, cuda=cuda)
    return load_transformers_backend(model_args, sft_args, cuda=cuda)
