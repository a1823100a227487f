"""Where a secret ended up on disk, searched from another process.

The scan must not open the workspace's SQLite files in the test process: closing any descriptor of a file drops
every POSIX lock this process holds on it, so a SQLite connection here loses its ``-shm`` lock, another process
(an Airflow component) then re-initialises the ``-shm`` as if it were first, and this process dies of SIGBUS on
its next query. ``grep`` in a child process holds no lock of ours.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def files_holding(root: Path, secret: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``secret`` (files that vanish during the scan are skipped)."""
    proc = subprocess.run(["grep", "-r", "-l", "-a", "-s", "-F", "-e", secret, "--", str(root)],
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode not in (0, 1, 2):
        raise RuntimeError(f"grep failed ({proc.returncode}): {proc.stderr}")
    return [Path(line) for line in proc.stdout.splitlines() if line]
