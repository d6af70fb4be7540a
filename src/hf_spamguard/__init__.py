"""hf-spamguard: keyword-spam moderation for marketplace listings, Hugging Face-native.

``import hf_spamguard`` registers the ``"listing-spam"`` task with ``transformers.pipeline``.
Heavy modules (torch, transformers) are imported lazily so that the CLI and the baseline start fast.
"""

from __future__ import annotations

from hf_spamguard.verdict import LABEL_NAMES, VERDICT_JSON_SCHEMA, VERDICT_KEYS, make_verdict

__version__ = "0.1.0"

__all__ = ["LABEL_NAMES", "VERDICT_JSON_SCHEMA", "VERDICT_KEYS", "__version__", "make_verdict"]


def _register_pipeline() -> None:
    # The pipeline module owns the registration (and stays cheap to import: see its docstring).
    from hf_spamguard.pipeline import register_pipeline

    register_pipeline()


_register_pipeline()
