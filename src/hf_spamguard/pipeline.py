"""``pipeline("listing-spam")``: Qwen3-VL verdicts that are strict JSON by construction.

>>> import hf_spamguard  # registers the task
>>> from transformers import pipeline
>>> pipe = pipeline("listing-spam", model="path/to/model")
>>> pipe({"text": "Nike tee. tags: adidas puma gucci", "image": "photo.jpg"})
{'is_spam': True, 'confidence': 0.93, 'reason': '...'}

This module is imported by ``import hf_spamguard``, so it stays cheap to import: transformers'
pipeline machinery costs seconds to load, and the baseline-only CLI must not pay for it. The class
:class:`ListingSpamPipeline` is therefore built on first access, and :func:`register_pipeline` registers
the task right away when ``transformers.pipelines`` is loaded already, otherwise the moment it is.
"""

from __future__ import annotations

import functools
import importlib.abc
import json
import os
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hf_spamguard.atomic import atomic_write_text
from hf_spamguard.files import CALIBRATION_FILE, CONFIG_FILE, POLICY_FILE, PROMPT_CONFIG_FILE, read_json

__all__ = [
    "CALIBRATION_FILE",
    "POLICY_FILE",
    "PROMPT_CONFIG_FILE",
    "TASK",
    "ListingSpamPipeline",  # noqa: F822 - built on first access by the module __getattr__
    "load_pipeline",
    "register_pipeline",
    "save_calibration",
    "save_pipeline_files",
]

TASK = "listing-spam"
# CALIBRATION_FILE ({"temperature": T} of hf_spamguard.scoring.fit_temperature), PROMPT_CONFIG_FILE and
# POLICY_FILE come from hf_spamguard.files and stay importable from here (__all__).

#: Batch size when neither pipeline(...) nor the call sets one.
DEFAULT_BATCH_SIZE = 8

#: Modules copied into a model folder by :func:`save_pipeline_files` are named ``spamguard_<module>.py``.
REMOTE_PREFIX = "spamguard_"
REMOTE_ENTRY = REMOTE_PREFIX + "pipeline"


# --------------------------------------------------------------------------------------------------
# The pipeline class (built on first use: its base class lives in the heavy transformers.pipelines)
# --------------------------------------------------------------------------------------------------
_CLASS: type | None = None


def _normalise_input(item: Any) -> tuple[Any, Any]:
    """``(text, image)`` from a string or a mapping (``text``/``description``, ``image``/``image_url``)."""
    if item is None or isinstance(item, str):
        return item or "", None
    if isinstance(item, Mapping):
        if "text" in item:
            text = item["text"]
        elif "description" in item:
            text = item["description"]
        else:
            raise ValueError(
                f"listing-spam input: a mapping needs a 'text' (or 'description') field, got keys {sorted(item)}"
            )
        image = item["image"] if "image" in item else item.get("image_url")
        return text, image
    raise ValueError(
        f"listing-spam input must be a string or a dict with 'text' and optional 'image', got {type(item).__name__}"
    )


def _as_pipeline_input(inputs: Any) -> Any:
    """🤗 ``datasets`` objects become what ``Pipeline.__call__`` streams: a sized torch dataset of rows for
    a ``Dataset`` (so DataLoader batching works), a generator for an ``IterableDataset``."""
    datasets = sys.modules.get("datasets")
    if datasets is None:  # not imported by the caller, so inputs cannot be a datasets object
        return inputs
    if isinstance(inputs, datasets.Dataset):
        from torch.utils.data import Dataset as TorchDataset

        class _Rows(TorchDataset):
            def __len__(self) -> int:
                return len(inputs)

            def __getitem__(self, i: int) -> dict[str, Any]:
                return inputs[i]

        return _Rows()
    if isinstance(inputs, datasets.IterableDataset):
        return (row for row in inputs)
    return inputs


def _build_pipeline_class() -> type:
    global _CLASS
    if _CLASS is not None:
        return _CLASS

    import torch
    from transformers import Pipeline

    from hf_spamguard.modeling import SpamGuardQwen3VLProcessor, load_processor
    from hf_spamguard.policy import Thresholds, as_thresholds
    from hf_spamguard.prompts import PreparedImage, PromptConfig
    from hf_spamguard.scoring import (
        ListingSettings,
        check_temperature,
        encode_prompt_batch,
        label_tokens,
        listing_prompt,
        listing_verdict,
        score_batch,
    )

    class ListingSpamPipeline(Pipeline):
        """Verdicts ``{"is_spam", "confidence", "reason"}`` (+ ``"decision"``) for marketplace listings.

        Inputs: a string, ``{"text": ..., "image": PIL | path | http(s) URL | bytes | None}``, a list of
        those, or a dataset / ``KeyDataset`` (streamed). Options per call (or as pipeline defaults):
        ``reason`` (default True), ``max_reason_tokens`` (48), ``policy`` (``Thresholds`` or
        ``{"review", "demote"}``: adds ``"decision"``; default ``policy.json`` of the model folder,
        ``False`` for none), ``temperature`` (default: ``calibration.json`` of
        the model folder, else 1.0), ``return_logit_diff`` (adds the raw ``l_true - l_false`` for
        calibration; the output is then no longer a bare verdict). ``allow_private_networks`` (a
        ``pipeline()`` argument, default False): photo URLs on loopback / private addresses are refused
        unless allowed (see :mod:`hf_spamguard.data.images`).
        """

        # The processor is loaded in __init__ with the torchvision-free class: AutoProcessor would pick the
        # stock Qwen3VLProcessor for base-model repos (which needs torchvision for its video processor).
        _load_processor = False
        _load_tokenizer = False
        _load_image_processor = False
        _load_feature_extractor = False
        _load_video_processor = False

        def __init__(
            self,
            *args: Any,
            model_dir: str | os.PathLike | None = None,
            prompt_config: Any = None,
            allow_private_networks: Any = False,
            **kwargs,
        ):
            super().__init__(*args, **kwargs)
            from hf_spamguard.data.images import load_image

            # Photo URLs come from sellers: fetched under the fetcher's network policy (public addresses
            # only unless allowed, as for ``spamguard dataset build --allow-private-networks``).
            self.load_image = functools.partial(load_image, allow_private_networks=allow_private_networks)
            if self._batch_size is None:
                self._batch_size = DEFAULT_BATCH_SIZE  # lists are batched unless told otherwise
            self.model_dir = self._find_model_dir(model_dir)
            if model_dir is None and getattr(self.model, "peft_config", None):
                # transformers attached an adapter but only remembers the base model's path, so the
                # adapter folder's calibration.json / policy.json / prompt_config.json are not found.
                warnings.warn(
                    "listing-spam: adapter loaded by pipeline(); pass model_dir=<adapter folder> (or use "
                    "hf_spamguard.pipeline.load_pipeline) to apply its calibration and policy",
                    stacklevel=2,
                )
            if not isinstance(self.processor, SpamGuardQwen3VLProcessor):
                # None, or a tokenizer-only object from AutoProcessor: load the real one.
                source = self.model_dir or getattr(self.model, "name_or_path", None)
                if not source:
                    raise ValueError("listing-spam: pass processor= (no model folder to load it from)")
                self.processor = load_processor(source)
            self.tokenizer = self.processor.tokenizer
            self.image_processor = None  # images are batched by the processor in _forward, not collated
            if self.device.type == "cpu" and self.model.dtype in (torch.float16, torch.bfloat16):
                # Half-precision matmuls on CPU are slow and lose accuracy; CPU inference runs in float32.
                self.model.to(torch.float32)
            self.model.eval()
            settings = ListingSettings.load(self.model_dir)  # the same reader as the vLLM engine's
            if prompt_config is None:
                prompt_config = settings.prompt_config
            if isinstance(prompt_config, Mapping):
                prompt_config = PromptConfig(**prompt_config)
            self.prompt_config = prompt_config or PromptConfig()
            self.label_tokens = label_tokens(self.tokenizer)
            self.default_temperature = settings.temperature
            self.default_policy: Thresholds | None = settings.policy

        def _find_model_dir(self, model_dir: str | os.PathLike | None) -> Path | None:
            candidates = [model_dir, getattr(self.model, "name_or_path", None)]
            candidates.append(getattr(getattr(self.model, "config", None), "_name_or_path", None))
            for cand in candidates:
                if cand and Path(cand).is_dir():
                    return Path(cand)
            return None

        def _sanitize_parameters(
            self,
            reason: bool | None = None,
            max_reason_tokens: int | None = None,
            policy: Any = None,
            temperature: float | None = None,
            return_logit_diff: bool | None = None,
            **kwargs: Any,
        ):
            if kwargs:
                raise TypeError(f"listing-spam: unexpected option(s) {sorted(kwargs)}")
            forward: dict[str, Any] = {}
            post: dict[str, Any] = {}
            if reason is not None:
                forward["reason"] = bool(reason)
            if max_reason_tokens is not None:
                if int(max_reason_tokens) < 0:
                    raise ValueError(f"max_reason_tokens must be >= 0, got {max_reason_tokens}")
                forward["max_reason_tokens"] = int(max_reason_tokens)
            if temperature is not None:
                forward["temperature"] = check_temperature(temperature, "temperature")
            if policy is not None:
                # False switches off a default policy read from the model folder's policy.json.
                post["policy"] = False if policy is False else as_thresholds(policy)
            if return_logit_diff is not None:
                post["return_logit_diff"] = bool(return_logit_diff)
            return {}, forward, post

        def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            """Score one listing, a list (returns a list) or a dataset / generator (returns an iterator).
            An empty list gives an empty list (the options are still checked)."""
            if isinstance(inputs, list | tuple) and len(inputs) == 0:
                # Checked as a non-empty call would be; batch_size / num_workers are Pipeline.__call__'s.
                self._sanitize_parameters(
                    **{k: v for k, v in kwargs.items() if k not in ("batch_size", "num_workers")}
                )
                return []
            return super().__call__(_as_pipeline_input(inputs), *args, **kwargs)

        def preprocess(self, inputs: Any) -> dict[str, Any]:
            text, image = _normalise_input(inputs)
            prompt, images = listing_prompt(
                self.processor, text, image, prompt_config=self.prompt_config, load_image=self.load_image
            )
            # Plain Python values: the default collate turns them into lists, _forward runs the processor
            # on the whole batch (left padding, images of varying sizes). The text is kept to rebuild the
            # prompt of a row whose photo the processor refuses.
            return {"prompt": prompt, "images": images, "text": text}

        def _encode(self, prompts: list[str], images: list[list[Any]], texts: list[Any]) -> Any:
            """The processor batch; a photo the processor refuses costs only its own row its photo.

            :func:`hf_spamguard.prompts.prepare_image` already gives every photo a size and shape the
            Qwen-VL processor takes; should one still be refused (another processor, another rule), the
            batch is not lost: each row with photos is tried alone, and a refused row is scored as a
            listing whose photo could not be read (the prompt says so), with a warning.
            """
            try:
                return encode_prompt_batch(self.processor, prompts, images)
            except (ValueError, TypeError, RuntimeError) as batch_error:
                prompts, images = list(prompts), list(images)
                refused = 0
                for i, row_images in enumerate(images):
                    if not row_images:
                        continue
                    try:
                        encode_prompt_batch(self.processor, [prompts[i]], [row_images])
                    except (ValueError, TypeError, RuntimeError) as err:
                        refused += 1
                        unreadable = PreparedImage(None, "corrupt", f"{type(err).__name__}: {err}")
                        prompts[i], images[i] = listing_prompt(
                            self.processor, texts[i], unreadable, prompt_config=self.prompt_config
                        )
                        warnings.warn(
                            f"listing-spam: the processor refused a photo ({err}); that listing is scored "
                            "as one whose photo could not be read",
                            stacklevel=2,
                        )
                if not refused:  # every row encodes alone: not a photo's fault
                    raise batch_error
                return encode_prompt_batch(self.processor, prompts, images)

        def _forward(
            self,
            model_inputs: dict[str, Any],
            reason: bool = True,
            max_reason_tokens: int = 48,
            temperature: float | None = None,
        ) -> dict[str, list]:
            prompts, images, texts = model_inputs["prompt"], model_inputs["images"], model_inputs["text"]
            if isinstance(prompts, str):  # batch_size=1: not collated
                prompts, images, texts = [prompts], [images], [texts]
            batch = self._encode(prompts, images, texts)
            out = score_batch(
                self.model,
                self.tokenizer,
                batch,
                temperature=self.default_temperature if temperature is None else temperature,
                reason=reason,
                max_reason_tokens=max_reason_tokens,
                tokens=self.label_tokens,
            )
            return {"confidence": out["confidence"], "reason": out["reason"], "logit_diff": out["logit_diff"]}

        def postprocess(
            self, model_outputs: dict[str, Any], policy: Any = None, return_logit_diff: bool = False
        ) -> dict[str, Any]:
            def one(value: Any) -> Any:
                return value[0] if isinstance(value, list | tuple) else value

            confidence = float(one(model_outputs["confidence"]))
            policy = self.default_policy if policy is None else policy
            verdict = listing_verdict(confidence, one(model_outputs["reason"]), policy)
            if return_logit_diff:
                verdict["logit_diff"] = float(one(model_outputs["logit_diff"]))
            return verdict

    ListingSpamPipeline.__module__ = __name__
    ListingSpamPipeline.__qualname__ = "ListingSpamPipeline"
    _CLASS = ListingSpamPipeline
    return ListingSpamPipeline


def __getattr__(name: str) -> Any:
    if name == "ListingSpamPipeline":
        return _build_pipeline_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------------
# Registration with transformers
# --------------------------------------------------------------------------------------------------
_TRANSFORMERS_PIPELINES = "transformers.pipelines"


def _register_now() -> None:
    import transformers.pipelines as pipelines_module
    from transformers import AutoModelForImageTextToText
    from transformers.pipelines import PIPELINE_REGISTRY

    cls = _build_pipeline_class()
    _prefer_installed_class(pipelines_module)
    current = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if current is not None and current.get("impl") is cls:
        return  # idempotent: no "already registered" warning on repeated calls
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=cls, pt_model=AutoModelForImageTextToText, type="multimodal"
    )


def _prefer_installed_class(pipelines_module: Any) -> None:
    """Let ``pipeline("listing-spam", model=<folder with our remote code>)`` use the registered class.

    A folder written by :func:`save_pipeline_files` carries a ``custom_pipelines`` entry for the task in
    its ``config.json`` (so that it loads where this package is not installed), and ``transformers.pipeline``
    refuses any task found there unless ``trust_remote_code=True`` -- even though the same code is
    installed and registered here. ``pipeline()`` reads that entry from the config it loads with the
    ``AutoConfig`` of its own module; the stand-in below drops *our* entry (impl
    ``spamguard_pipeline.ListingSpamPipeline``) when the call did not ask for remote code, so the task
    resolves to the registered class; with ``trust_remote_code=True`` the folder's copy is used, as
    transformers does. A custom pipeline of anyone else is left alone. Patched on the module rather than
    by wrapping ``pipeline()``, so that it works whichever of ``import hf_spamguard`` and ``from
    transformers import pipeline`` comes first. Idempotent.
    """
    original = pipelines_module.AutoConfig
    if getattr(original, "_spamguard_stand_in", False):
        return

    class AutoConfig(original):  # type: ignore[misc, valid-type] - only from_pretrained differs
        _spamguard_stand_in = True

        @classmethod
        def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
            config = original.from_pretrained(*args, **kwargs)
            entries = getattr(config, "custom_pipelines", None)
            ours = isinstance(entries, dict) and str((entries.get(TASK) or {}).get("impl", "")).startswith(
                REMOTE_ENTRY + "."
            )
            if ours and kwargs.get("_from_pipeline") == TASK and not kwargs.get("trust_remote_code"):
                config.custom_pipelines = {k: v for k, v in entries.items() if k != TASK}
            return config

    AutoConfig.__qualname__ = original.__qualname__
    AutoConfig.__module__ = original.__module__
    pipelines_module.AutoConfig = AutoConfig


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Runs :func:`_register_now` right after ``transformers.pipelines`` has been imported."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _TRANSFORMERS_PIPELINES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        original_exec = loader.exec_module
        finder_self = self

        def exec_module(module: Any) -> None:
            original_exec(module)
            if finder_self in sys.meta_path:
                sys.meta_path.remove(finder_self)
            try:
                _register_now()
            except Exception as err:  # noqa: BLE001 - never break `import transformers.pipelines`
                warnings.warn(f"hf_spamguard: could not register the {TASK!r} pipeline: {err}", stacklevel=2)

        loader.exec_module = exec_module
        return spec


def register_pipeline() -> None:
    """Register ``"listing-spam"`` with ``transformers.pipeline`` (idempotent, cheap).

    Registers immediately when ``transformers.pipelines`` is already imported; otherwise installs a
    one-shot import hook so that registration happens as soon as it is (``from transformers import
    pipeline`` / ``pipeline(...)``), without making ``import hf_spamguard`` load torch.
    """
    module = sys.modules.get(_TRANSFORMERS_PIPELINES)
    if module is not None and hasattr(module, "PIPELINE_REGISTRY"):
        _register_now()
        return
    if not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())


# --------------------------------------------------------------------------------------------------
# Loading and saving model folders
# --------------------------------------------------------------------------------------------------
def load_pipeline(
    model_dir: str | os.PathLike,
    *,
    device: Any = None,
    dtype: Any = None,
    base_model: str | os.PathLike | None = None,
    batch_size: int | None = None,
    **pipeline_kwargs: Any,
) -> Any:
    """A ready :class:`ListingSpamPipeline` for a merged or adapter folder (adapters merged in).

    ``device``/``dtype`` default to CUDA + bfloat16 when available, else CPU + float32. Reads
    ``calibration.json``, ``policy.json`` and ``prompt_config.json`` from ``model_dir`` when present.
    """
    from hf_spamguard.modeling import choose_device_and_dtype, load_model, load_processor

    device, dtype = choose_device_and_dtype(device, dtype)
    model = load_model(model_dir, device=device, dtype=dtype, base_model=base_model)
    processor = load_processor(model_dir, base_model=base_model)
    cls = _build_pipeline_class()
    kwargs = dict(pipeline_kwargs)
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    return cls(model=model, processor=processor, task=TASK, device=device, model_dir=model_dir, **kwargs)


def save_calibration(model_dir: str | os.PathLike, temperature: float) -> Path:
    """Write ``calibration.json`` (``{"temperature": T}``) into ``model_dir`` atomically.

    ``temperature`` must be a finite number in :data:`hf_spamguard.scoring.TEMPERATURE_RANGE`
    (``ValueError`` naming the file otherwise): a file the pipeline would refuse is never written."""
    from hf_spamguard.scoring import check_temperature

    path = Path(model_dir) / CALIBRATION_FILE
    temperature = check_temperature(temperature, f"{path}, field 'temperature'")
    atomic_write_text(path, json.dumps({"temperature": temperature}, indent=2) + "\n")
    return path


_IMPORT_FROM = re.compile(r"^(\s*)from\s+hf_spamguard((?:\.\w+)+)\s+import\s", re.MULTILINE)
_ANY_PACKAGE_IMPORT = re.compile(r"^\s*(?:from|import)\s+hf_spamguard\b", re.MULTILINE)


def _remote_name(module: str) -> str:
    """``hf_spamguard.data.images`` → ``spamguard_data_images``."""
    return REMOTE_PREFIX + module.removeprefix("hf_spamguard.").replace(".", "_")


def _module_source(module: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"cannot find the source of {module}")
    return Path(spec.origin).read_text(encoding="utf-8")


def _remote_sources(entry: str = "hf_spamguard.pipeline") -> dict[str, str]:
    """The self-contained code closure of ``entry``: ``{file name: source with relative imports}``."""
    sources: dict[str, str] = {}
    todo = [entry]
    while todo:
        module = todo.pop()
        name = _remote_name(module) + ".py"
        if name in sources:
            continue
        source = _module_source(module)

        def rewrite(match: re.Match[str]) -> str:
            target = "hf_spamguard" + match.group(2)
            todo.append(target)
            return f"{match.group(1)}from .{_remote_name(target)} import "

        rewritten = _IMPORT_FROM.sub(rewrite, source)
        if leftover := _ANY_PACKAGE_IMPORT.search(rewritten):
            raise ValueError(f"{module}: cannot make {leftover.group(0).strip()!r} self-contained")
        header = (
            f"# Copied from {module} by hf_spamguard.pipeline.save_pipeline_files so that\n"
            f'# pipeline("{TASK}", model=<this folder>, trust_remote_code=True) works without hf_spamguard.\n'
        )
        sources[name] = header + rewritten
    return sources


def save_pipeline_files(folder: str | os.PathLike) -> Path:
    """Make ``folder`` load with ``pipeline("listing-spam", model=folder, trust_remote_code=True)``.

    Writes the pipeline code and everything it imports from this package as ``spamguard_*.py`` (with
    relative imports, so the folder works where ``hf_spamguard`` is not installed) and adds the
    ``custom_pipelines`` entry to ``config.json``. Adapter folders are refused (see the error); merge
    them with :func:`hf_spamguard.modeling.merge_adapter` first.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder}")
    for name, source in _remote_sources().items():
        atomic_write_text(folder / name, source)
    config_path = folder / CONFIG_FILE
    config = read_json(config_path)
    if config is None:
        from hf_spamguard.modeling import is_adapter_folder

        if is_adapter_folder(folder):
            # A local folder with config.json + adapter counts as "full model with embedded adapter" for
            # transformers, which then looks for the base weights inside it; without config.json the
            # custom_pipelines entry has nowhere to live. Remote code therefore needs a merged folder.
            raise ValueError(
                f"{folder} is a peft adapter folder: merge it first (hf_spamguard.modeling.merge_adapter) "
                "to publish it with the pipeline code; adapter folders load with `import hf_spamguard`"
            )
        raise FileNotFoundError(f"{folder}: config.json not found (not a saved model folder)")
    config.setdefault("custom_pipelines", {})[TASK] = {
        "impl": f"{REMOTE_ENTRY}.ListingSpamPipeline",
        "pt": ["AutoModelForImageTextToText"],
        "tf": [],
        "type": "multimodal",
    }
    atomic_write_text(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder
