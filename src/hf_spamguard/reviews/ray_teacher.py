"""The review teacher through Ray Data in front of vLLM (``spamguard label --engine vllm --ray``).

The same prompts, forced segments and probabilities as the vLLM teacher
(:class:`~hf_spamguard.reviews.vllm_teacher.VLLMTeacherLabeler`), run by ``ray.data.llm``
(``vLLMEngineProcessorConfig`` + ``build_processor``) on a local Ray cluster or the one at
``--ray-address``, with vLLM's replicas (``--ray-concurrency``) as Ray actors. The engine arguments are
the project's (:func:`hf_spamguard.vllm_engine.engine_arguments`); prompts go in as token ids
(``tokenized_prompt``; the chat-template, tokenize and detokenize stages are off), one output token
restricted to the label pair, its renormalised log-probabilities read back.

Why the answer is enumerated: the transformers and vLLM teachers walk the answer label by label, each
label's forced segment following the value chosen for the one before — L rounds of requests. A Ray Data
pass starts its engine actors anew (tens of seconds), so rounds would cost L engine starts per pass.
Instead both values are requested at every label: ``2^L − 1`` one-token requests per review (15 for
the four review labels), all sharing the prompt's cached prefix, in one pass; the greedy path through
them is then read in Python and gives exactly the walk's probabilities. Taxonomies of more than
:data:`MAX_LABELS` labels are refused (use ``--engine vllm`` without ``--ray``). Rationales need the
path first and are not generated here.

The job (shards, manifest, identity, resume) stays :mod:`hf_spamguard.reviews.labeling`'s: shards are
labelled in passes of :attr:`RayTeacherLabeler.pass_rows` reviews and written when their pass ends; a
killed run resumes at the first shard not written.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hf_spamguard.reviews.teacher import TeacherLabeler, _check_teacher_exists, teacher_tokenizer
from hf_spamguard.taxonomy import Taxonomy

__all__ = ["MAX_LABELS", "RayTeacherLabeler"]

#: Most labels the enumeration takes (2^8 − 1 = 255 one-token requests per review).
MAX_LABELS = 8


def _postprocess(row: dict[str, Any]) -> dict[str, Any]:
    """The logit difference of the pair from the engine's renormalised log-probabilities."""
    logprobs = row["logprobs"][0]

    def value(token: int) -> float:
        entry = logprobs.get(token, logprobs.get(str(token)))
        return float(entry["logprob"])

    return {
        "row": int(row["row"]),
        "step": int(row["step"]),
        "path": int(row["path"]),
        "diff": value(int(row["t"])) - value(int(row["f"])),
    }


def _preprocess(row: dict[str, Any]) -> dict[str, Any]:
    pair = [int(row["t"]), int(row["f"])]
    return {
        "row": row["row"],
        "step": row["step"],
        "path": row["path"],
        "t": row["t"],
        "f": row["f"],
        "tokenized_prompt": [int(i) for i in row["ids"]],
        "sampling_params": {"max_tokens": 1, "temperature": 0.0, "logprobs": 2, "allowed_token_ids": pair},
    }


class RayTeacherLabeler(TeacherLabeler):
    """Teacher probabilities computed by Ray Data + vLLM, a pass at a time (:meth:`prepare`);
    :meth:`label_texts` then hands out the rows' results as the labelling job asks for them."""

    #: Reviews per Ray Data pass (each pass starts the engine replicas once).
    pass_rows = 16384

    def __init__(
        self,
        teacher: str | os.PathLike[str],
        tokenizer: Any,
        taxonomy: Taxonomy | str,
        *,
        dtype: str | None = None,
        address: str | None = None,
        concurrency: int = 1,
        batch_size: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(None, tokenizer, taxonomy, **kwargs)
        if self.rationale:
            raise ValueError(
                "--ray labels probabilities only (a rationale follows the whole answer's path): drop "
                "--rationale, or label with --engine vllm without --ray"
            )
        if len(self.steps) > MAX_LABELS:
            raise ValueError(
                f"--ray takes taxonomies of at most {MAX_LABELS} labels (it requests both values of every "
                f"label: 2^L - 1 requests per review); this one has {len(self.steps)}: label with --engine "
                "vllm without --ray"
            )
        self.teacher = str(teacher)
        self.dtype = dtype
        self.address = address
        self.concurrency = concurrency
        self.batch_size = batch_size
        self._probs: dict[int, np.ndarray] = {}

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        path: str | os.PathLike[str],
        taxonomy: Taxonomy | str = "reviews",
        *,
        device: str | None = None,
        dtype: str | None = None,
        **kwargs: Any,
    ) -> RayTeacherLabeler:
        """Check the teacher and load its tokenizer; the engines start in :meth:`prepare`. ``device`` is
        not used (Ray places the replicas)."""
        from hf_spamguard.reviews.ray_engine import check_ray_installed
        from hf_spamguard.vllm_engine import check_vllm_installed

        check_ray_installed()
        check_vllm_installed()
        path = str(path)
        _check_teacher_exists(path)
        return cls(
            path, teacher_tokenizer(path), taxonomy, dtype=None if dtype == "auto" else dtype, **kwargs
        )

    @property
    def device(self) -> Any:
        return "ray"

    # ------------------------------------------------------------------------------------ requests
    def _requests(self, rows: pd.DataFrame) -> list[dict[str, Any]]:
        """Every request of the enumeration: for label ``step`` and each ``path`` of the earlier values
        (bit i set: label i was ``true``), the prompt, the segments and values so far, this segment."""
        prompts = [self.prompt(row) for row in rows.to_dict("records")]
        encoded = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        requests = []
        for index, ids in zip(rows.index, encoded, strict=True):
            for step, (prefix, t_id, f_id, _, _) in enumerate(self.steps):
                for bits in itertools.product((False, True), repeat=step):
                    tokens = list(ids)
                    for (seg, t, f, t_rest, f_rest), value in zip(self.steps, bits, strict=False):
                        tokens += [*seg, *([t, *t_rest] if value else [f, *f_rest])]
                    tokens += prefix
                    path = sum(1 << i for i, value in enumerate(bits) if value)
                    requests.append(
                        {"row": int(index), "step": step, "path": path, "t": t_id, "f": f_id, "ids": tokens}
                    )
        return requests

    def _walk(self, diffs: dict[tuple[int, int, int], float], index: int) -> np.ndarray:
        """The greedy path through one review's enumerated answers: each label's probability given the
        values chosen before it (as the transformers teacher walks its cache)."""
        probs = np.zeros(len(self.steps), dtype=np.float64)
        path = 0
        for step in range(len(self.steps)):
            probs[step] = 1.0 / (1.0 + np.exp(-diffs[index, step, path]))
            if probs[step] >= 0.5:
                path |= 1 << step
        return probs

    # ------------------------------------------------------------------------------------ the pass
    def prepare(self, chunks: Sequence[pd.DataFrame]) -> None:
        """One Ray Data pass over the labellable rows of ``chunks`` (shards of the job)."""
        from hf_spamguard.reviews.data import unlabellable_reason

        rows = pd.concat(list(chunks)) if chunks else pd.DataFrame()
        if rows.empty:
            return
        rows = rows[[unlabellable_reason(r) is None for r in rows.to_dict("records")]]
        if rows.empty:
            return
        requests = self._requests(rows)
        diffs = {(r["row"], r["step"], r["path"]): r["diff"] for r in self._run(requests)}
        for index in rows.index:
            self._probs[int(index)] = self._walk(diffs, int(index))

    def _run(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import ray
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig

        from hf_spamguard.hub_io import local_folder
        from hf_spamguard.reviews.ray_engine import _connect, _quiet_ray_data_logs, _run_settings, _shutdown
        from hf_spamguard.vllm_engine import _cuda_available, engine_arguments

        with contextlib.ExitStack() as stack:
            engine = engine_arguments(Path(local_folder(self.teacher)), stack, dtype=self.dtype)
            folder = engine.pop("model")
            engine.pop("tokenizer")
            env = {
                k: os.environ[k] for k in ("VLLM_LOGGING_LEVEL", "VLLM_CPU_KVCACHE_SPACE") if k in os.environ
            }
            options: dict[str, Any] = {
                "model_source": folder,
                "engine_kwargs": engine,
                "concurrency": self.concurrency,
                "batch_size": self.batch_size,
                "log_engine_metrics": False,  # on needs ray[serve]
                "chat_template_stage": False,
                "tokenize_stage": False,
                "detokenize_stage": False,
                "runtime_env": {"env_vars": env},
            }
            if not _cuda_available():
                options["placement_group_config"] = {"bundles": [{"CPU": 1}]}
            started = _connect(self.address)
            try:
                with _run_settings(), _quiet_ray_data_logs():
                    processor = build_processor(
                        vLLMEngineProcessorConfig(**options), preprocess=_preprocess, postprocess=_postprocess
                    )
                    return processor(ray.data.from_items(requests)).take_all()
            finally:
                if started:
                    _shutdown()

    def label_texts(self, rows: pd.DataFrame) -> tuple[np.ndarray, list[str | None]]:
        """The probabilities :meth:`prepare` computed for ``rows`` (each handed out once)."""
        missing = [i for i in rows.index if int(i) not in self._probs]
        if missing:
            raise RuntimeError(
                f"rows {missing[:5]} were not prepared: call prepare() with their shards first"
            )
        probs = np.stack([self._probs.pop(int(i)) for i in rows.index])
        return probs, [None] * len(rows)
