"""Snapshot of a step's ``source_directory``: the files the step runs with, minus ignore-file matches.

Unlike v1 (one top-level ignore file), every folder's ``.amlignore`` — or its ``.gitignore`` when it has no
``.amlignore`` — applies to that folder's subtree, and ignored folders are not walked at all. Snapshots are
stored content-addressed under the workspace home, so an unchanged file is stored once across runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pathspec

ALWAYS_IGNORED = (".git", "__pycache__", ".mlpipe", ".azureml", ".venv", ".ipynb_checkpoints")


def _ignore_spec(folder: Path) -> pathspec.PathSpec | None:
    for name in (".amlignore", ".gitignore"):
        path = folder / name
        if path.is_file():
            return pathspec.GitIgnoreSpec.from_lines(path.read_text().splitlines())
    return None


def snapshot_files(folder: str | Path) -> list[str]:
    """Relative paths (sorted, '/'-separated) of the files a snapshot holds."""
    folder = Path(folder)
    specs: dict[str, list[tuple[str, pathspec.PathSpec]]] = {}
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        rel_dir = os.path.relpath(dirpath, folder).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        parent = rel_dir.rstrip("/").rsplit("/", 1)[0] + "/" if "/" in rel_dir.rstrip("/") else ""
        active = list(specs.get(parent if rel_dir else "", [])) if rel_dir else []
        own = _ignore_spec(Path(dirpath))
        if own is not None:
            active.append((rel_dir, own))
        specs[rel_dir] = active

        def ignored(rel: str, active=active) -> bool:
            return any(spec.match_file(rel[len(base):]) for base, spec in active)

        dirnames[:] = [d for d in sorted(dirnames)
                       if d not in ALWAYS_IGNORED and not ignored(rel_dir + d + "/")]
        found.extend(rel_dir + f for f in sorted(filenames) if not ignored(rel_dir + f))
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


def git_info(folder: str | Path) -> dict[str, Any] | None:
    """Repository, branch, commit and dirty flag when ``folder`` is inside a git work tree (one git call)."""
    folder = Path(folder).resolve()
    if not any((p / ".git").exists() for p in (folder, *folder.parents)):
        return None
    try:
        out = subprocess.run(["git", "-C", str(folder), "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
                             capture_output=True, text=True, timeout=10)
        top = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    info: dict[str, Any] = {"repository": top.stdout.strip(), "dirty": False}
    for line in out.stdout.splitlines():
        if line.startswith("# branch.oid "):
            info["commit"] = line.split(" ", 2)[2]
        elif line.startswith("# branch.head "):
            info["branch"] = line.split(" ", 2)[2]
        elif not line.startswith("#"):
            info["dirty"] = True
    return info


#: ``source_directory`` of a step whose snapshot was uploaded to the server (remote submission)
SNAPSHOT_PREFIX = "mlpipe-snapshot:"


class SnapshotStore:
    """Content-addressed file objects plus one manifest per step run, under ``<home>/snapshots``."""

    def __init__(self, home: str | Path) -> None:
        self.root = Path(home) / "snapshots"
        self.objects = self.root / "objects"

    def _object(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a blake3 hex digest: {digest!r}")
        return self.objects / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self._object(digest).is_file()

    def put_bytes(self, digest: str, data: bytes) -> None:
        """Store an uploaded object after checking that its content matches its name."""
        import blake3

        if blake3.blake3(data).hexdigest() != digest:
            raise ValueError(f"object content does not match its digest {digest}")
        obj = self._object(digest)
        if obj.exists():
            return
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, obj)

    def read_json(self, digest: str) -> Any:
        return json.loads(self._object(digest).read_bytes())

    def save(self, folder: str | Path, manifest: dict[str, str], step_run_id: str,
             git: dict[str, Any] | None) -> Path:
        """Store new file contents and the run's manifest; returns the manifest path."""
        folder = Path(folder)
        for rel, digest in manifest.items() if not str(folder).startswith(SNAPSHOT_PREFIX) else ():
            obj = self._object(digest)
            if not obj.exists():
                obj.parent.mkdir(parents=True, exist_ok=True)
                tmp = obj.with_suffix(f".tmp{os.getpid()}")
                shutil.copy2(folder / rel, tmp)
                os.replace(tmp, obj)
        runs = self.root / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        path = runs / f"{step_run_id}.json"
        path.write_text(json.dumps({"source_directory": str(folder), "files": manifest, "git": git}, indent=1))
        return path

    def materialize(self, manifest: dict[str, str], target: str | Path) -> None:
        """The working copy a step runs in: copies of the stored objects (never links: a script that rewrites a
        file in its working folder must not change the stored snapshot)."""
        target = Path(target)
        target.mkdir(parents=True, exist_ok=True)
        for rel, digest in manifest.items():
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self._object(digest), dest)


def source_manifest(workspace: Any, step: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The step's snapshot manifest ``{relative path: content hash}`` and git info: read from the local folder,
    or from an uploaded snapshot (``mlpipe-snapshot:<digest>``) for a pipeline submitted from another machine."""
    source = step.get("source_directory")
    if not source:  # e.g. an AutoMLStep: no code of its own
        return {}, None
    if source.startswith(SNAPSHOT_PREFIX):
        doc = SnapshotStore(workspace.home).read_json(source[len(SNAPSHOT_PREFIX):])
        return doc["files"], doc.get("git")
    from airflow_mlpipe.runtime.fingerprints import tree_manifest

    return tree_manifest(workspace.store, source, step.get("hash_paths")), None
