"""Running the real ``spamguard`` entry point in a subprocess, as a user would (never a terminal)."""

from __future__ import annotations

import os
import subprocess
import sys


def spamguard(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """The real entry point in a subprocess (what a user sees), never a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "hf_spamguard", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )
