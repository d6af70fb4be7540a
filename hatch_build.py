"""Ship the repository's top-level ``model_card/`` templates inside the wheel as ``hf_spamguard/model_card``.

Only for regular wheels: a force-include in an editable wheel would create ``site-packages/hf_spamguard/``
holding nothing but the templates, and that folder imports as a namespace package even where the editable
path is not on ``sys.path``. Editable installs read the templates from the checkout instead.
"""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "wheel" and version == "standard":
            build_data["force_include"]["model_card"] = "hf_spamguard/model_card"
