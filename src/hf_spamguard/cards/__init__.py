"""Model, dataset, metric and baseline cards rendered from the ``model_card/`` Jinja templates.

Every renderer takes plain facts (:mod:`~hf_spamguard.cards.facts`: dataclasses of dicts, numbers and
strings) so that training, ``baseline train``, ``distill``, ``publish`` and the demo can all write
their card without this package importing them: cards sit at layer 1 and import nothing above layer 0
(the system prompt, the skops trust list and the policy's default targets are passed in). Each
renderer writes ``README.md`` in the given folder atomically and returns its path.

- :mod:`~hf_spamguard.cards.render`: template lookup, strict rendering, value and metric formatting;
- :mod:`~hf_spamguard.cards.facts`: the facts classes and the readers of a folder's records;
- :mod:`~hf_spamguard.cards.model`, :mod:`~hf_spamguard.cards.baseline`,
  :mod:`~hf_spamguard.cards.dataset`, :mod:`~hf_spamguard.cards.metric`: one renderer per card kind.
"""

from __future__ import annotations

from hf_spamguard.cards.baseline import render_baseline_card, render_student_card
from hf_spamguard.cards.dataset import FEATURE_MEANINGS, render_dataset_card
from hf_spamguard.cards.facts import (
    CARD_TRAINING_ARGS,
    BaselineCardFacts,
    CardFacts,
    ModelCardFacts,
    StudentCardFacts,
    baseline_card_facts,
    find_eval_results,
    installed_version,
    model_card_facts,
    policy_facts,
    selection_notes,
    sidecar_facts,
    student_card_facts,
)
from hf_spamguard.cards.metric import render_metric_card
from hf_spamguard.cards.model import render_model_card
from hf_spamguard.cards.render import (
    HEADLINE_METRICS,
    METRIC_PRETTY,
    REPO_PLACEHOLDER,
    flatten_metrics,
    format_value,
    headline_metrics,
    metric_value,
    template_dir,
    template_path,
)

__all__ = [
    "CARD_TRAINING_ARGS",
    "FEATURE_MEANINGS",
    "HEADLINE_METRICS",
    "METRIC_PRETTY",
    "REPO_PLACEHOLDER",
    "BaselineCardFacts",
    "CardFacts",
    "ModelCardFacts",
    "StudentCardFacts",
    "baseline_card_facts",
    "find_eval_results",
    "flatten_metrics",
    "format_value",
    "headline_metrics",
    "installed_version",
    "metric_value",
    "model_card_facts",
    "policy_facts",
    "render_baseline_card",
    "render_dataset_card",
    "render_metric_card",
    "render_model_card",
    "render_student_card",
    "selection_notes",
    "sidecar_facts",
    "student_card_facts",
    "template_dir",
    "template_path",
]
