"""hf_spamguard.atomic: the one way the package writes files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hf_spamguard.atomic import atomic_path, atomic_write_json, atomic_write_text, stale_temp_files


@pytest.mark.parametrize("durable", [False, True])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "sub" / "data.json"
    atomic_write_json(target, {"v": 1}, durable=durable)
    with pytest.raises(RuntimeError, match="half way"), atomic_path(target, durable=durable) as tmp:
        tmp.write_text('{"v": 2, "trunc')
        raise RuntimeError("half way")
    assert json.loads(target.read_text()) == {"v": 1}
    assert stale_temp_files(target.parent) == []
    atomic_write_text(target, "replaced\n", durable=durable)
    assert target.read_text() == "replaced\n"
    assert stale_temp_files(target.parent) == []


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path: Path) -> None:
    # mkstemp makes owner-only files; a model folder written for upload must be readable like open()'s.
    old = os.umask(0o022)
    try:
        out = atomic_write_text(tmp_path / "README.md", "card")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


def test_a_killed_writer_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    # A real SIGKILL in the middle of a large write: the target still holds the previous content; only
    # a stale temporary file remains, which stale_temp_files finds for clean-up.
    target = tmp_path / "big.bin"
    target.write_bytes(b"old")
    script = textwrap.dedent(
        f"""
        import os, signal
        from hf_spamguard.atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp, open(tmp, "wb") as fh:
            fh.write(b"x" * 1_000_000)
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old"
    (stale,) = stale_temp_files(tmp_path)
    assert stale.stat().st_size == 1_000_000
