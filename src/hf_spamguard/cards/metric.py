"""The Space card of the exported ``listing_spam_policy`` evaluate module (``model_card/metric_card.md``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hf_spamguard.cards.facts import installed_version
from hf_spamguard.cards.render import format_value, render, write_card
from hf_spamguard.files import CARD_FILE

#: Keys of the selection targets the template's fallback body names (``policy.DEFAULT_TARGETS``).
TARGET_KEYS = ("target_demote_precision", "target_recall", "review_budget")


def render_metric_card(
    folder: str | Path,
    *,
    repo_id: str | None = None,
    sdk: str = "gradio",
    sdk_version: str | None = None,
    app_file: str = "app.py",
    title: str = "listing_spam_policy",
    targets: Mapping[str, float] | None = None,
    package_version: str | None = None,
) -> Path:
    """Write the Space card (``README.md`` with the Space's YAML: sdk, app_file, tags...) of the exported
    ``listing_spam_policy`` evaluate module in ``folder``.

    The metric's own documentation (the card ``metrics.export_space`` copies next to the script) is kept
    as the body, with ``evaluate.load`` snippets pointed at ``repo_id``; the template supplies the body
    only when there is none. Space metadata already in that card is kept unless set here.
    ``targets``: the default selection targets by keyword (:data:`TARGET_KEYS`, as
    ``policy.DEFAULT_TARGETS``), named in the template's body; None leaves the numbers out.
    ``package_version``: default the installed hf-spamguard's."""
    from huggingface_hub import SpaceCard, SpaceCardData

    folder = Path(folder)
    existing: dict[str, Any] = {}
    metric_doc = None
    if (folder / CARD_FILE).is_file():
        card = SpaceCard.load(folder / CARD_FILE, ignore_metadata_errors=True)
        existing = card.data.to_dict()
        metric_doc = card.text.strip() or None
    ref = repo_id or title
    if metric_doc:
        metric_doc = re.sub(r'evaluate\.load\("[^"]*"\)', f'evaluate.load("{ref}")', metric_doc)
    meta: dict[str, Any] = {
        "emoji": "🛡️",
        "colorFrom": "indigo",
        "colorTo": "green",
        "pinned": False,
        "license": "apache-2.0",
        "short_description": "Keep/review/demote policy metric for spam moderation",
        "description": "Evaluates a keep / review / demote moderation policy from spam confidences.",
        **existing,
    }
    meta.update(title=title, sdk=sdk, app_file=app_file)
    if sdk_version:
        meta["sdk_version"] = sdk_version
    meta["tags"] = list(dict.fromkeys([*meta.get("tags", []), "evaluate", "metric", "hf-spamguard"]))
    card_data = SpaceCardData(**meta)
    content = render(
        "metric_card",
        card_data,
        metric_ref=ref,
        metric_doc=metric_doc,
        module_file=f"{title}.py",
        targets={key: _plain(targets[key]) for key in TARGET_KEYS} if targets else None,
        package_version=installed_version() if package_version is None else package_version,
    )
    return write_card(folder, content, SpaceCard)


def _plain(value: float) -> str:
    # a target of 0.5 reads "0.5" here, as typed in policy.py (the 4-decimal table format gives 0.5000)
    return format(value, "g") if isinstance(value, float) else format_value(value)
