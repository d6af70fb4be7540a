"""The review teacher on vLLM (``spamguard label --engine vllm``): the same prompts, forced segments and
per-label probabilities as :class:`~hf_spamguard.reviews.teacher.TeacherLabeler`.

The answer ``{"advertisement": <v>, "irrelevant": <v>, ...`` is walked label by label exactly as the
transformers teacher walks its KV cache: after each forced segment (the token ids of
``"<label>": ``, tokenised jointly with the value, so BPE glues the space to it), the renormalised
probability of ``true`` vs ``false`` is read (:meth:`hf_spamguard.vllm_engine.VLLMEngine.logit_diffs`)
and the more likely value is appended before the next segment. Each label is one round of requests over
the batch; vLLM's prefix caching keeps the prompt's KV blocks between rounds, so a round computes only
the few new tokens. A single grammar-constrained generation of the whole JSON object would be one
request, but it would let the model choose its own tokenisation of the keys (a grammar constrains
characters, not tokens), and the probabilities would no longer be those of the transformers teacher.
The optional rationale is generated under the JSON-string regex, as listing reasons are.

The labelling job (shards, manifest, identity, resume) stays :mod:`hf_spamguard.reviews.labeling`'s;
the engine is one more field of the job's identity.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from hf_spamguard.reviews.teacher import TeacherLabeler, _check_teacher_exists, teacher_tokenizer
from hf_spamguard.taxonomy import Taxonomy
from hf_spamguard.verdict import clean_reason

__all__ = ["VLLMTeacherLabeler"]


class VLLMTeacherLabeler(TeacherLabeler):
    """:class:`TeacherLabeler` whose model runs in vLLM (:class:`hf_spamguard.vllm_engine.VLLMEngine`)."""

    def __init__(self, engine: Any, tokenizer: Any, taxonomy: Taxonomy | str, **kwargs: Any) -> None:
        super().__init__(None, tokenizer, taxonomy, **kwargs)
        self.engine = engine

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        taxonomy: Taxonomy | str = "reviews",
        *,
        device: str | None = None,
        dtype: str | None = None,
        **kwargs: Any,
    ) -> VLLMTeacherLabeler:
        """Start vLLM on the teacher (a folder, merged or peft adapter, or a Hub id). ``device`` is not
        used (vLLM places the model itself); ``dtype`` as for the transformers teacher (None: bfloat16 on
        GPU, float32 on CPU)."""
        from hf_spamguard.vllm_engine import VLLMEngine

        path = str(path)
        _check_teacher_exists(path)
        tokenizer = teacher_tokenizer(path)
        engine = VLLMEngine(path, dtype=None if dtype in (None, "auto") else dtype)
        try:
            return cls(engine, tokenizer, taxonomy, **kwargs)
        except BaseException:
            engine.close()
            raise

    @property
    def device(self) -> Any:
        return "vllm"

    def label_texts(self, rows: pd.DataFrame) -> tuple[np.ndarray, list[str | None]]:
        """``(probabilities (n, L), rationales)`` for labellable review rows (one batch)."""
        prompts = [self.prompt(row) for row in rows.to_dict("records")]
        walked = [list(ids) for ids in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        probs = np.zeros((len(walked), len(self.steps)), dtype=np.float64)
        for j, (prefix, t_id, f_id, t_rest, f_rest) in enumerate(self.steps):
            for ids in walked:
                ids.extend(prefix)
            diffs = self.engine.logit_diffs([{"prompt_token_ids": ids} for ids in walked], t_id, f_id)
            probs[:, j] = 1.0 / (1.0 + np.exp(-np.asarray(diffs, dtype=np.float64)))
            # The more likely value is what the teacher "said": the next labels are conditioned on it.
            for ids, p in zip(walked, probs[:, j], strict=True):
                ids.extend([t_id, *t_rest] if p >= 0.5 else [f_id, *f_rest])
        rationales: list[str | None] = [None] * len(walked)
        if self.rationale:
            follow = [{"prompt_token_ids": ids + list(self.rationale_ids)} for ids in walked]
            raw = self.engine.json_strings(follow, self.max_rationale_tokens)
            rationales = [clean_reason(text) for text in raw]
        return probs, rationales

    def close(self) -> None:
        """Shut the engine down."""
        self.engine.close()
