"""Snapshot of a step's ``source_directory``: the files the step runs with, minus ignore-file matches."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pathspec

ALWAYS_IGNORED = (".git", "__pycache__", ".mlpipe", ".azureml", ".venv")


def ignore_spec(folder: Path) -> pathspec.PathSpec | None:
    """``.amlignore`` wins over ``.gitignore`` at the top of the folder, as in v1."""
    for name in (".amlignore", ".gitignore"):
        path = folder / name
        if path.is_file():
            return pathspec.GitIgnoreSpec.from_lines(path.read_text().splitlines())
    return None


def snapshot_files(folder: str | Path) -> list[str]:
    """Relative paths (sorted, '/'-separated) of the files a snapshot holds; ignored folders are not walked."""
    folder = Path(folder)
    spec = ignore_spec(folder)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        rel_dir = os.path.relpath(dirpath, folder).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        keep = []
        for d in sorted(dirnames):
            if d in ALWAYS_IGNORED or (spec and spec.match_file(rel_dir + d + "/")):
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            rel = rel_dir + f
            if spec and spec.match_file(rel):
                continue
            found.append(rel)
    return sorted(found)


def copy_snapshot(folder: str | Path, target: str | Path) -> list[str]:
    folder, target = Path(folder), Path(target)
    files = snapshot_files(folder)
    for rel in files:
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / rel, dest)
    target.mkdir(parents=True, exist_ok=True)
    return files
