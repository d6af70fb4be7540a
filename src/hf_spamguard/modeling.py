"""Loading Qwen3-VL models and processors: merged folders, peft adapter folders, device and dtype.

The stock ``Qwen3VLProcessor`` insists on a video processor, which needs torchvision (and torchvision
next to the pinned CPU torch breaks ``transformers.Trainer``). Listings have no videos, so
:class:`SpamGuardQwen3VLProcessor` is the same processor built with ``video_processor=None`` and the
PIL image processor. It must be registered with ``AutoProcessor``: without the registration
``AutoProcessor.from_pretrained`` silently falls back to returning just the tokenizer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, Qwen3VLConfig
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

from hf_spamguard.files import ADAPTER_CONFIG_FILE, SIDECAR_FILES, read_json

__all__ = [
    "SpamGuardQwen3VLProcessor",
    "choose_device_and_dtype",
    "is_adapter_folder",
    "load_model",
    "load_processor",
    "merge_adapter",
    "register_processor",
]


class SpamGuardQwen3VLProcessor(Qwen3VLProcessor):
    """``Qwen3VLProcessor`` without the video processor (no torchvision needed); images go through PIL."""

    # ProcessorMixin discovers sub-processors from the ``__init__`` signature: leaving
    # ``video_processor`` out is what keeps it from loading (and requiring) the torchvision one.
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        kwargs.pop("video_processor", None)
        super().__init__(
            image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs
        )


_REGISTERED = False


def register_processor() -> None:
    """Register :class:`SpamGuardQwen3VLProcessor` as the ``AutoProcessor`` of Qwen3-VL configs (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    # The remote-code copy of this module (written by ``save_pipeline_files``) defines a class of the same
    # name; when both are imported in one process, keep the first so ``isinstance`` checks stay stable.
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    current = getattr(PROCESSOR_MAPPING, "_extra_content", {}).get(Qwen3VLConfig)
    if current is not None and current.__name__ == SpamGuardQwen3VLProcessor.__name__:
        _REGISTERED = True
        return
    try:
        AutoProcessor.register(Qwen3VLConfig, SpamGuardQwen3VLProcessor, exist_ok=True)
    except TypeError:  # older transformers without ``exist_ok``
        AutoProcessor.register(Qwen3VLConfig, SpamGuardQwen3VLProcessor)
    _REGISTERED = True


register_processor()


def choose_device_and_dtype(
    device: str | torch.device | None = None, dtype: torch.dtype | str | None = None
) -> tuple[torch.device, torch.dtype | str]:
    """CUDA → bfloat16, CPU → float32 (bf16 matmuls on CPU are slow and lose accuracy), unless given.

    ``dtype="auto"`` is passed through: the checkpoint's own dtype (``from_pretrained`` semantics).
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    elif isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    return device, dtype


def is_adapter_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a peft adapter (``adapter_config.json``) rather than full weights."""
    return (Path(path) / ADAPTER_CONFIG_FILE).is_file()


def _adapter_base(path: str | os.PathLike, base_model: str | os.PathLike | None) -> str:
    if base_model is not None:
        return str(base_model)
    cfg = read_json(Path(path) / ADAPTER_CONFIG_FILE, missing={})
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"{Path(path) / ADAPTER_CONFIG_FILE}: field 'base_model_name_or_path' is empty; pass base_model="
        )
    return str(base)


def load_processor(
    path: str | os.PathLike, *, base_model: str | os.PathLike | None = None
) -> SpamGuardQwen3VLProcessor:
    """Load the processor saved in ``path`` (or in the adapter's base model when ``path`` has none)."""
    register_processor()
    path = str(path)
    has_own = any((Path(path) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))
    if os.path.isdir(path) and not has_own and is_adapter_folder(path):
        path = _adapter_base(path, base_model)
    return SpamGuardQwen3VLProcessor.from_pretrained(path)


def load_model(
    path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    base_model: str | os.PathLike | None = None,
    merge_adapter: bool = True,
    **from_pretrained_kwargs: Any,
) -> PreTrainedModel:
    """Load a Qwen3-VL for inference from a merged folder/Hub id or a peft adapter folder.

    Adapter folders load their base model (``base_model`` overrides the one recorded in
    ``adapter_config.json``) and, with ``merge_adapter``, fold the LoRA weights in: the merged model is as
    fast as the base model. Quantised bases cannot be merged and keep the adapter attached.
    Returns the model in eval mode on ``device`` (default: CUDA if available) with the device's dtype.
    """
    device, dtype = choose_device_and_dtype(device, dtype)
    path = str(path)
    if os.path.isdir(path) and is_adapter_folder(path):
        from peft import PeftModel

        base = AutoModelForImageTextToText.from_pretrained(
            _adapter_base(path, base_model), dtype=dtype, **from_pretrained_kwargs
        )
        model = PeftModel.from_pretrained(base, path)
        quantized = getattr(base, "is_quantized", False) or getattr(base, "quantization_method", None)
        if merge_adapter and not quantized:
            model = model.merge_and_unload()
    else:
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, **from_pretrained_kwargs)
    if not getattr(model, "hf_device_map", None):
        model = model.to(device)
    model.eval()
    return model


def merge_adapter(
    adapter_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    base_model: str | os.PathLike | None = None,
    dtype: torch.dtype | str | None = None,
) -> Path:
    """Fold a LoRA adapter into its base model and save a standalone folder (weights + processor).

    ``calibration.json``, ``policy.json`` and ``prompt_config.json`` are copied along. The result loads
    like any model and can carry the pipeline code (:func:`hf_spamguard.pipeline.save_pipeline_files`).
    """
    import shutil

    if not is_adapter_folder(adapter_dir):
        raise ValueError(f"{adapter_dir}: no {ADAPTER_CONFIG_FILE}, not a peft adapter folder")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(
        adapter_dir, device="cpu", dtype=dtype or "auto", base_model=base_model, merge_adapter=True
    )
    model.save_pretrained(out)
    load_processor(adapter_dir, base_model=base_model).save_pretrained(out)
    for name in SIDECAR_FILES:
        if (Path(adapter_dir) / name).is_file():
            shutil.copyfile(Path(adapter_dir) / name, out / name)
    return out
