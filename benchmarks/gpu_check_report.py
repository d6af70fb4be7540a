"""The report of ``benchmarks/gpu_check.py``: sections as JSON and a Markdown table, rewritten atomically.

Also the small CUDA helpers its sections share (synchronise, peak memory). Importable without torch.
"""

from __future__ import annotations

import gc
import math
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

GIB = 1024**3


class Skipped(Exception):
    """A section that cannot run here; the message says why."""


# --------------------------------------------------------------------------------------------------
# Report: JSON + Markdown, rewritten atomically after every section
# --------------------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Plain JSON: non-finite floats become None (the sections also say whether values were finite)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return jsonable(value.item())
    return str(value)


class Report:
    """The check's results; ``run`` executes one guarded section and rewrites both files."""

    def __init__(self, out: Path, meta: dict[str, Any], deadline: float) -> None:
        self.out = out
        self.deadline = deadline
        self.data: dict[str, Any] = {"schema": 1, **meta, "running": None, "sections": {}}
        out.mkdir(parents=True, exist_ok=True)

    @property
    def failed(self) -> list[str]:
        return [k for k, v in self.data["sections"].items() if v.get("status") == "failed"]

    def write(self) -> None:
        from hf_spamguard.atomic import atomic_write_json, atomic_write_text

        atomic_write_json(self.out / "gpu_check.json", jsonable(self.data), allow_nan=False)
        atomic_write_text(self.out / "gpu_check.md", markdown(self.data))

    def record(self, name: str, entry: dict[str, Any]) -> None:
        self.data["sections"][name] = entry
        self.write()

    def skip(self, name: str, reason: str) -> dict[str, Any]:
        """Record section ``name`` as skipped, with why."""
        entry = {"status": "skipped", "reason": reason}
        print(f"[gpu_check] {name}: skipped: {reason}", flush=True)
        self.record(name, entry)
        return entry

    def run(self, name: str, fn: Callable[[], dict[str, Any]], *, needs_s: float = 0.0) -> dict[str, Any]:
        """Run ``fn`` (its dict is the section); a :class:`Skipped` or any error is recorded, not raised."""
        left = self.deadline - time.monotonic()
        if left < needs_s:
            return self.skip(name, f"time budget: {left:.0f} s left, needs about {needs_s:.0f} s")
        print(f"[gpu_check] {name} ...", flush=True)
        self.data["running"] = name
        self.write()
        started = time.perf_counter()
        try:
            entry = {"status": "ok", **fn()}
        except Skipped as exc:
            entry = {"status": "skipped", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one section's failure must not lose the others
            entry = {
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}"[:2000],
                "traceback": traceback.format_exc().splitlines()[-25:],
            }
        entry["seconds"] = round(time.perf_counter() - started, 2)
        self.data["running"] = None
        free_memory()
        shown = entry.get("summary") or entry.get("reason") or entry.get("error", "")
        print(f"[gpu_check] {name}: {entry['status']} ({entry['seconds']:.0f} s) {shown}", flush=True)
        self.record(name, entry)
        return entry


def markdown(data: dict[str, Any]) -> str:
    """The results as a Markdown table (one row per section)."""
    env = data["sections"].get("environment", {})
    lines = [
        f"# GPU check ({data.get('mode')}: {data.get('model')})",
        "",
        f"{env.get('device', '?')}; torch {env.get('versions', {}).get('torch', '?')}, transformers "
        f"{env.get('versions', {}).get('transformers', '?')}; started {data.get('started', '?')}.",
        "",
        "| section | status | result | seconds |",
        "|---|---|---|---|",
    ]
    for name, entry in data["sections"].items():
        status = entry.get("status", "?")
        result = entry.get("summary") or entry.get("reason") or entry.get("error", "")
        result = str(result).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {name} | {status} | {result} | {entry.get('seconds', '')} |")
    if data.get("running"):
        lines.append(f"| {data['running']} | interrupted | stopped while running | |")
    return "\n".join(lines) + "\n"


def free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is always there
        pass


def sync_cuda(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def peak_gib(cuda: bool) -> dict[str, float | None]:
    if not cuda:
        return {"peak_gpu_gib": None}
    import torch

    return {
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / GIB, 3),
        "peak_gpu_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 3),
    }


def reset_peak(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
