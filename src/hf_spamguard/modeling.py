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

from hf_spamguard.files import ADAPTER_CONFIG_FILE, CONFIG_FILE, SIDECAR_FILES, read_json

__all__ = [
    "ModelFolderError",
    "SpamGuardQwen3VLProcessor",
    "check_model_folder",
    "choose_device_and_dtype",
    "is_adapter_folder",
    "load_model",
    "load_processor",
    "merge_adapter",
    "portable_base_name",
    "quiet_library_noise",
    "register_processor",
    "write_video_processor_config",
    "set_adapter_base",
]


def quiet_library_noise() -> None:
    """Silence two messages of third-party libraries that every CPU run printed and no user can act on
    (idempotent, cheap; called where this package loads models and before training imports trl):

    - bitsandbytes (imported by peft) logs "Failed to load CPU gemm_4bit_forward from kernels-community:
      No module named 'kernels'" on every start on an AVX512-BF16 CPU: an optional Hub kernel, never used
      by the CPU paths here, and its advice (`pip install kernels`) cannot work offline. A filter drops
      that one record; the logger's level and every other bitsandbytes message are left alone.
    - peft asks ``model.is_gradient_checkpointing`` when it wraps a model (twice per training run: the
      trainer's LoRA and the merge), a property transformers 5 deprecated with a ``FutureWarning``; only
      peft can change that call.
    """
    import logging
    import warnings

    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(f, _NoKernelsCommunityNotice) for f in logger.filters):
        logger.addFilter(_NoKernelsCommunityNotice())
    # filterwarnings replaces an identical entry rather than adding a second one.
    warnings.filterwarnings(
        "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )


class _NoKernelsCommunityNotice:
    """A logging filter dropping bitsandbytes' "Failed to load CPU gemm_4bit_forward" notice only."""

    def filter(self, record: Any) -> bool:
        return not str(record.msg).startswith("Failed to load CPU gemm_4bit_forward from kernels-community")


quiet_library_noise()


class SpamGuardQwen3VLProcessor(Qwen3VLProcessor):
    """``Qwen3VLProcessor`` without the video processor (no torchvision needed); images go through PIL."""

    # ProcessorMixin discovers sub-processors from the ``__init__`` signature: leaving
    # ``video_processor`` out is what keeps it from loading (and requiring) the torchvision one.
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        kwargs.pop("video_processor", None)
        super().__init__(
            image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs
        )

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        """Save as ``Qwen3VLProcessor`` does, plus the video processor config vLLM's Qwen3-VL path loads
        (:func:`write_video_processor_config`), so every folder the project writes runs in vLLM too."""
        result = super().save_pretrained(save_directory, *args, **kwargs)
        write_video_processor_config(save_directory, self.image_processor)
        return result


def write_video_processor_config(folder: str | os.PathLike[str], image_processor: Any) -> Path:
    """Write ``video_preprocessor_config.json`` into ``folder`` as ``Qwen3VLVideoProcessor(...)`` saves it,
    with the image processor's patching and normalisation. Written by hand: the video processor class
    needs torchvision, which the main environment does not have. No video is ever used; vLLM's Qwen3-VL
    processor refuses a folder without the file."""
    import json

    from hf_spamguard.atomic import atomic_write_text
    from hf_spamguard.files import VIDEO_PROCESSOR_CONFIG_FILE

    def get(name: str, default: Any) -> Any:
        value = getattr(image_processor, name, None)
        return default if value is None else value

    config = {
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "do_sample_frames": True,
        "fps": 2,
        "image_mean": list(get("image_mean", [0.5, 0.5, 0.5])),
        "image_std": list(get("image_std", [0.5, 0.5, 0.5])),
        "max_frames": 768,
        "merge_size": int(get("merge_size", 2)),
        "min_frames": 4,
        "patch_size": int(get("patch_size", 16)),
        "resample": 3,
        "rescale_factor": 1 / 255,
        "return_metadata": False,
        "size": {"longest_edge": 786432, "shortest_edge": 131072},
        "temporal_patch_size": int(get("temporal_patch_size", 2)),
        "video_processor_type": "Qwen3VLVideoProcessor",
    }
    path = Path(folder) / VIDEO_PROCESSOR_CONFIG_FILE
    atomic_write_text(path, json.dumps(config, indent=2) + "\n")
    return path


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


class ModelFolderError(ValueError):
    """A local model folder that cannot be loaded; the one-line message names the folder or the file."""


#: Weight files of a saved model (the index files of sharded checkpoints list the shards).
_WEIGHT_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",
    "pytorch_model*.bin",
    "pytorch_model*.bin.index.json",
)
_ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def _check_safetensors(path: Path) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        # Reads and validates the header only: a truncated file fails here ("file not fully covered").
        with safe_open(str(path), "pt"):
            pass
    except (SafetensorError, OSError) as exc:
        raise ModelFolderError(
            f"{path}: unreadable safetensors weights ({exc}); the file is truncated or corrupt: copy or "
            "download it again"
        ) from exc


def check_model_folder(path: str | os.PathLike) -> None:
    """Refuse a local model folder that cannot load, with one line naming the folder or file, before
    transformers gets to it (its errors are tracebacks): ``config.json`` / ``adapter_config.json``
    missing or not JSON, no weights, truncated safetensors, a shard of the index missing. Anything that
    is not a local folder (a Hub id) is left to ``from_pretrained``. Raises :class:`ModelFolderError`
    (a ``ValueError``)."""
    folder = Path(path)
    if not folder.is_dir():
        return
    adapter = is_adapter_folder(folder)
    read_json(folder / (ADAPTER_CONFIG_FILE if adapter else CONFIG_FILE))  # SidecarError names the file
    if adapter:
        weights = [folder / n for n in _ADAPTER_WEIGHTS if (folder / n).is_file()]
        if not weights:
            raise ModelFolderError(f"{folder}: a peft adapter folder without {_ADAPTER_WEIGHTS[0]}")
    else:
        if not (folder / CONFIG_FILE).is_file():
            raise ModelFolderError(f"{folder}: no {CONFIG_FILE} (not a saved model folder)")
        weights = sorted({f for pattern in _WEIGHT_PATTERNS for f in folder.glob(pattern)})
        if not weights:
            raise ModelFolderError(
                f"{folder}: no model weights (model.safetensors); the copy or download is incomplete"
            )
    for file in weights:
        if file.name.endswith(".index.json"):
            index = read_json(file, missing={})
            shards = sorted(set((index.get("weight_map") or {}).values()))
            missing = [name for name in shards if not (folder / name).is_file()]
            if missing:
                raise ModelFolderError(f"{file}: lists {len(missing)} missing shard(s), e.g. {missing[0]}")
        elif file.suffix == ".safetensors":
            _check_safetensors(file)


def _load_errors(folder: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, with the load errors of a local folder as one-line
    :class:`ModelFolderError`s naming it (a weights-only refusal of a pickle names its file)."""
    import pickle

    from safetensors import SafetensorError

    if not os.path.isdir(folder):
        return call(*args, **kwargs)
    try:
        return call(*args, **kwargs)
    except pickle.UnpicklingError as exc:
        bins = sorted(p.name for p in Path(folder).glob("*.bin"))
        where = Path(folder) / bins[0] if bins else Path(folder)
        raise ModelFolderError(
            f"{where}: refused by torch.load(weights_only=True): this pickle holds more than plain tensors "
            "and loading it would run its code; use safetensors weights (model.safetensors)"
        ) from exc
    except (SafetensorError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFolderError(f"{folder}: cannot load the model ({first})") from exc


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
    return _load_errors(path, SpamGuardQwen3VLProcessor.from_pretrained, path)


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
    A local folder that cannot load (see :func:`check_model_folder`; also a pickle ``.bin`` that
    ``weights_only`` refuses) raises :class:`ModelFolderError` naming it, in one line.
    """
    device, dtype = choose_device_and_dtype(device, dtype)
    path = str(path)
    check_model_folder(path)
    if os.path.isdir(path) and is_adapter_folder(path):
        from peft import PeftModel

        base_path = _adapter_base(path, base_model)
        check_model_folder(base_path)
        base = _load_errors(
            base_path,
            AutoModelForImageTextToText.from_pretrained,
            base_path,
            dtype=dtype,
            **from_pretrained_kwargs,
        )
        model = _load_errors(path, PeftModel.from_pretrained, base, path)
        quantized = getattr(base, "is_quantized", False) or getattr(base, "quantization_method", None)
        if merge_adapter and not quantized:
            model = model.merge_and_unload()
    else:
        model = _load_errors(
            path, AutoModelForImageTextToText.from_pretrained, path, dtype=dtype, **from_pretrained_kwargs
        )
    if not getattr(model, "hf_device_map", None):
        model = model.to(device)
    model.eval()
    return model


def portable_base_name(base: str | os.PathLike, hub_id: str | None = None) -> tuple[str, str]:
    """``(name, how)``: how an adapter published to the Hub should name its base model ``base``.

    A Hub id stays as it is. A local folder is named by ``hub_id`` when given, else by the repo id of a
    Hugging Face cache snapshot (``.../models--ORG--NAME/snapshots/<rev>`` → ``ORG/NAME``), else by the
    folder's own name (a relative name: the adapter then loads with ``base_model=``). Never an absolute
    local path, which means nothing on another machine and tells readers about this one. ``how`` says
    which rule applied, for the notes shown to the user.
    """
    from hf_spamguard.hub_io import is_repo_id

    text = os.fspath(base)
    if not os.path.isdir(text):
        return text, "Hub id"
    if hub_id:
        return hub_id, "Hub id given"
    for part in reversed(Path(text).resolve().parts):
        if part.startswith("models--") and "--" in part[len("models--") :]:
            candidate = part[len("models--") :].replace("--", "/", 1)
            if is_repo_id(candidate):
                return candidate, "Hub id of the cache snapshot"
    return Path(text).resolve().name, "local folder name; no Hub id known"


def set_adapter_base(adapter_dir: str | os.PathLike, name: str) -> None:
    """Record ``name`` as the base model of the adapter in ``adapter_dir``: ``base_model_name_or_path``
    of ``adapter_config.json`` and the ``base_model`` lines of the adapter card peft writes next to it."""
    from hf_spamguard.atomic import atomic_write_json, atomic_write_text

    folder = Path(adapter_dir)
    cfg_path = folder / ADAPTER_CONFIG_FILE
    cfg = read_json(cfg_path, missing=None)
    if cfg is None:
        return
    old = str(cfg.get("base_model_name_or_path") or "")
    cfg["base_model_name_or_path"] = name
    atomic_write_json(cfg_path, cfg, default=str)
    card = folder / "README.md"
    if old and old != name and card.is_file():
        text = card.read_text(encoding="utf-8")
        atomic_write_text(
            card,
            text.replace(f"base_model: {old}", f"base_model: {name}").replace(
                f"base_model:adapter:{old}", f"base_model:adapter:{name}"
            ),
        )


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
