"""``evaluate`` metrics shipped with the package, and their export as self-contained Hub Spaces.

The metric scripts import their logic from :mod:`hf_spamguard.policy`. ``evaluate`` copies a metric
script into its module cache and resolves only *relative* imports of files in the same folder, so a
Space cannot use ``from hf_spamguard.policy import ...`` (the package is not installed there).
:func:`export_space` therefore copies ``policy.py`` verbatim as ``spamguard_policy.py`` and rewrites
that one import to ``from .spamguard_policy import ...``: one source of truth, no hand-kept duplicate.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from hf_spamguard.atomic import atomic_write_text

_HERE = Path(__file__).resolve().parent
_POLICY_SOURCE = _HERE.parent / "policy.py"
_PACKAGE_IMPORT = re.compile(r"^from hf_spamguard\.policy import ", flags=re.MULTILINE)
_SPACE_MODULE = "spamguard_policy"

#: Metrics available in this package.
METRICS: tuple[str, ...] = ("listing_spam_policy",)

_APP = """import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("{name}")
launch_gradio_widget(module)
"""

_REQUIREMENTS = "evaluate>=0.4.3\ndatasets>=2.0\nnumpy>=1.26\ngradio>=4\n"


def _check(name: str) -> Path:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(METRICS)}")
    return _HERE / name


def path(name: str = "listing_spam_policy") -> str:
    """Path of the metric script, for ``evaluate.load(path(name))``."""
    return str(_check(name) / f"{name}.py")


def export_space(name: str, out_dir: str | os.PathLike[str]) -> Path:
    """Write a self-contained metric folder (a Hub Space for ``evaluate``) to ``out_dir``.

    Contents: ``<name>.py`` (import rewritten to the local copy), ``spamguard_policy.py`` (verbatim
    ``hf_spamguard/policy.py``), ``README.md`` (metric card with Space metadata), ``app.py`` and
    ``requirements.txt``. ``evaluate.load`` finds a local metric only in a folder named after it (as in
    a Space clone ``user/<name>``), so unless ``out_dir`` is already called ``<name>`` the files go to
    ``out_dir/<name>``. Returns that folder: ``evaluate.load(str(returned))`` works without
    ``hf_spamguard`` installed.
    """
    src = _check(name)
    script = (src / f"{name}.py").read_text(encoding="utf-8")
    script, count = _PACKAGE_IMPORT.subn(f"from .{_SPACE_MODULE} import ", script)
    if count != 1:
        raise RuntimeError(
            f"{name}.py must import its logic with exactly one 'from hf_spamguard.policy import'"
        )
    if "hf_spamguard" in "\n".join(
        line for line in script.splitlines() if line.startswith(("import", "from"))
    ):
        raise RuntimeError(f"{name}.py imports more of hf_spamguard than policy.py; it cannot be exported")
    policy_source = _POLICY_SOURCE.read_text(encoding="utf-8")
    if re.search(r"^\s*(from|import)\s+hf_spamguard", policy_source, flags=re.MULTILINE):
        raise RuntimeError("policy.py must not import hf_spamguard (it is copied into metric Spaces)")
    header = (
        "# Verbatim copy of hf_spamguard/policy.py written by hf_spamguard.metrics.export_space;\n"
        "# edit the original in the hf-spamguard repository, not this file.\n"
    )
    out = Path(out_dir)
    if out.name != name:
        out = out / name
    out.mkdir(parents=True, exist_ok=True)
    files = {
        f"{name}.py": script,
        f"{_SPACE_MODULE}.py": header + policy_source,
        "README.md": (src / "README.md").read_text(encoding="utf-8"),
        "app.py": _APP.format(name=name),
        "requirements.txt": _REQUIREMENTS,
    }
    for filename, text in files.items():
        atomic_write_text(out / filename, text)
    # stale byte-code of an earlier export would shadow nothing, but keep the folder clean
    shutil.rmtree(out / "__pycache__", ignore_errors=True)
    return out


__all__ = ["METRICS", "export_space", "path"]
