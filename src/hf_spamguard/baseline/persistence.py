"""A baseline folder on disk: ``model.skops`` (arrays only, loaded against a trusted-types list),
``config.json`` (``"model_type": "spamguard-baseline"``) and, for a binary model with thresholds,
``policy.json``.

This module knows the folder, not the classifier: :meth:`BaselineClassifier.save_pretrained
<hf_spamguard.baseline.BaselineClassifier.save_pretrained>` hands it the state and the config to write,
and :meth:`~hf_spamguard.baseline.BaselineClassifier.from_pretrained` builds the model from what
:func:`load_folder` returns (imports point from the model to here, never back).

Why a trusted-types list of our own: ``skops.io.get_untrusted_types`` lists only the types skops does not
trust by default, and skops trusts scikit-learn estimators and NumPy functions; a baseline holds nothing
but arrays and built-ins, so anything else in the file is refused before it is loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from hf_spamguard.atomic import atomic_write_bytes
from hf_spamguard.files import BASELINE_MODEL_FILE, CONFIG_FILE, POLICY_FILE, SidecarError, read_json
from hf_spamguard.policy import Thresholds

#: ``config.json``'s ``model_type`` of a baseline folder (what tells it from a transformers model).
MODEL_TYPE = "spamguard-baseline"

#: The only types a ``model.skops`` file may contain (checked before loading; anything else is refused).
TRUSTED_TYPES: tuple[str, ...] = (
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
)


# scikit-learn bundles array-api-compat, whose ``sklearn.externals.array_api_compat.torch`` imports torch.
# ``import skops.io`` builds its trusted-types list with ``sklearn.utils.all_estimators()``, which walks
# every sklearn package with ``pkgutil.walk_packages`` and so imports that shim (and torch, 2-4 s and
# hundreds of MB) although it lists nothing from ``externals``. The shim is refused while skops.io is
# imported; walk_packages skips a package that fails to import, and the list comes out the same.
_TORCH_SHIM = "sklearn.externals.array_api_compat.torch"


class _RefuseTorchShim:
    """A ``sys.meta_path`` finder that makes importing :data:`_TORCH_SHIM` fail (nothing else)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == _TORCH_SHIM:
            raise ModuleNotFoundError(f"{name} is not imported by the baseline (it would import torch)")
        return None


def _skops_io() -> Any:
    """``skops.io``, imported without torch (see :data:`_TORCH_SHIM`). Where torch is imported already
    (a process that also runs the VLM), nothing is refused: the shim then costs nothing."""
    import sys

    if "skops.io" in sys.modules or "torch" in sys.modules:
        import skops.io

        return skops.io
    finder = _RefuseTorchShim()
    sys.meta_path.insert(0, finder)
    try:
        import skops.io
    finally:
        sys.meta_path.remove(finder)
    return skops.io


class UntrustedModelError(ValueError):
    """A ``model.skops`` file contains a type outside :data:`TRUSTED_TYPES` (or is not a skops file)."""


class BaselineFolder(NamedTuple):
    """What :func:`load_folder` read: the local folder, its config, the skops state and the thresholds."""

    directory: Path
    config: dict[str, Any]
    state: dict[str, Any]
    policy: Thresholds | None


def save_folder(
    directory: str | os.PathLike[str],
    state: dict[str, Any],
    config: dict[str, Any],
    policy: Thresholds | None = None,
) -> Path:
    """Write ``state`` to ``model.skops``, ``config`` to ``config.json`` and ``policy`` (when given) to
    ``policy.json`` in ``directory`` (created); each file is written atomically. Returns the folder.

    ``state`` must hold only :data:`TRUSTED_TYPES` (or :func:`load_folder` refuses it later); NumPy
    scalars in ``config`` are written as floats.
    """
    sio = _skops_io()

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / BASELINE_MODEL_FILE, sio.dumps(state))
    atomic_write_bytes(directory / CONFIG_FILE, (json.dumps(config, indent=2, default=float) + "\n").encode())
    if policy is not None:
        policy.save(directory)
    return directory


def load_folder(
    directory: str | os.PathLike[str], *, revision: str | None = None, token: str | None = None
) -> BaselineFolder:
    """Read a folder written by :func:`save_folder`, or a Hub repo id (``"org/name"``, downloaded once
    into the Hugging Face cache).

    Raises ``FileNotFoundError`` when ``config.json`` or ``model.skops`` is missing, ``ValueError`` when
    the config's ``model_type`` is not :data:`MODEL_TYPE` (:class:`~hf_spamguard.files.SidecarError` when
    it is not valid JSON), and :class:`UntrustedModelError` when the skops file holds any type outside
    :data:`TRUSTED_TYPES` — checked before anything in it is instantiated.
    """
    from hf_spamguard.hub_io import local_folder

    directory = local_folder(directory, revision=revision, token=token)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} is not a baseline model folder: no {CONFIG_FILE}")
    config = read_json(config_path)
    if config.get("model_type") != MODEL_TYPE:
        raise ValueError(
            f"{config_path}: model_type is {config.get('model_type')!r}, expected {MODEL_TYPE!r}"
        )
    model_path = directory / BASELINE_MODEL_FILE
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} is missing")
    present = skops_types(model_path)
    untrusted = sorted(present - set(TRUSTED_TYPES))
    if untrusted:
        raise UntrustedModelError(
            f"{model_path} contains types that are not trusted: {untrusted}; refusing to load"
        )
    state = _load_plain(model_path)
    if state is None:  # something the plain reader does not know: skops itself (checked types only)
        state = _skops_io().load(model_path, trusted=sorted(present))
    policy = Thresholds.load(directory) if (directory / POLICY_FILE).is_file() else None
    return BaselineFolder(directory, config, state, policy)


class _NotPlain(Exception):
    """A node :func:`_load_plain` leaves to skops."""


def _load_plain(path: Path) -> dict[str, Any] | None:
    """The state of a skops file that holds only dicts (str keys), lists, tuples, JSON scalars and plain
    NumPy arrays (what a multi-label baseline is), read without importing skops; None for anything else.

    Why: ``import skops.io`` imports scikit-learn and SciPy (1-2 s), which is most of the start-up of a
    whole ``spamguard score`` process. The types were checked against :data:`TRUSTED_TYPES` before; the
    arrays are read with ``allow_pickle=False``, so nothing but data is instantiated either way.
    """
    import io
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))

        def build(node: Any) -> Any:
            if not isinstance(node, dict):
                raise _NotPlain
            loader, content = node.get("__loader__"), node.get("content")
            if loader == "DictNode" and isinstance(content, dict):
                key_types = node.get("key_types", {}).get("content", [])
                if len(key_types) != len(content) or any(
                    (k.get("__loader__"), k.get("__module__"), k.get("__class__"))
                    != ("TypeNode", "builtins", "str")
                    for k in key_types
                ):
                    raise _NotPlain
                return {k: build(v) for k, v in content.items()}
            if loader in ("ListNode", "TupleNode") and isinstance(content, list):
                items = [build(v) for v in content]
                return items if loader == "ListNode" else tuple(items)
            if loader == "JsonNode" and node.get("is_json") and isinstance(content, str):
                value = json.loads(content)
                if value is not None and not isinstance(value, bool | int | float | str):
                    raise _NotPlain
                return value
            if (loader, node.get("__module__"), node.get("__class__"), node.get("type")) == (
                "NdArrayNode",
                "numpy",
                "ndarray",
                "numpy",
            ):
                return np.load(io.BytesIO(archive.read(node["file"])), allow_pickle=False)
            raise _NotPlain

        try:
            state = build(schema)
        except (_NotPlain, KeyError, ValueError):
            return None
    return state if isinstance(state, dict) else None


def skops_types(path: str | os.PathLike[str]) -> set[str]:
    """Every type a skops file would instantiate (``module.Class``), read from its ``schema.json``.

    ``skops.io.get_untrusted_types`` lists only the types skops does not trust by default, and skops
    trusts e.g. scikit-learn estimators and NumPy functions; a model that holds nothing but arrays and
    built-ins must refuse those too, so the whole tree is checked against :data:`TRUSTED_TYPES`.
    Raises :class:`UntrustedModelError` when ``path`` is not a readable skops archive.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise UntrustedModelError(f"{path}: not a readable skops file ({err})") from err
    types: set[str] = set()
    todo: list[Any] = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if "__class__" in node or "__module__" in node:
                types.add(f"{node.get('__module__')}.{node.get('__class__')}")
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return types


def is_baseline_folder(directory: str | os.PathLike[str]) -> bool:
    """True when ``directory/config.json`` says ``"model_type": "spamguard-baseline"``; False when it is
    missing, not valid JSON or another model's config (never raises for a bad file)."""
    try:
        config = read_json(Path(directory) / CONFIG_FILE)
    except SidecarError:
        return False
    return isinstance(config, dict) and config.get("model_type") == MODEL_TYPE


__all__ = [
    "MODEL_TYPE",
    "TRUSTED_TYPES",
    "BaselineFolder",
    "UntrustedModelError",
    "is_baseline_folder",
    "load_folder",
    "save_folder",
    "skops_types",
]
