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

from airflow_mlpipe.contract.exceptions import PipelineValidationError
from airflow_mlpipe.contract.paths import check_digest, relative_path, safe_join
from airflow_mlpipe.contract.spec import SNAPSHOT_PREFIX  # re-exported: its historical home
from airflow_mlpipe.data.hashing import copy_hashed, hash_file

__all__ = ["SNAPSHOT_PREFIX", "SnapshotStore", "git_info", "snapshot_files", "source_manifest"]

ALWAYS_IGNORED = (".git", "__pycache__", ".mlpipe", ".azureml", ".venv", ".ipynb_checkpoints")


def _ignore_spec(folder: Path) -> pathspec.PathSpec | None:
    for name in (".amlignore", ".gitignore"):
        path = folder / name
        if path.is_file():
            return pathspec.GitIgnoreSpec.from_lines(path.read_text().splitlines())
    return None


def snapshot_files(folder: str | Path, step: str | None = None) -> list[str]:
    """Relative paths (sorted, '/'-separated) of the files a snapshot holds.

    Symbolic links are followed, never silently dropped: a linked folder's files are in the snapshot under the
    link's path and a linked file contributes its target's bytes (as if copied). A link that loops back to a
    folder above it, a link whose target is missing and a folder that cannot be listed are rejected with a
    PipelineValidationError naming the step and the path.
    """
    folder = Path(folder)
    where = f"Step {step!r}, argument 'source_directory'" if step else f"source_directory {str(folder)!r}"

    def unreadable(err: OSError) -> None:
        raise PipelineValidationError(f"{where}: cannot list folder {err.filename}: {err.strerror}") from err

    specs: dict[str, list[tuple[str, pathspec.PathSpec]]] = {}
    chains: dict[str, tuple[str, ...]] = {}  # real paths of the folders walked down to each folder (loop guard)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=True):
        rel_dir = os.path.relpath(dirpath, folder).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        parent = rel_dir.rstrip("/").rsplit("/", 1)[0] + "/" if "/" in rel_dir.rstrip("/") else ""
        active = list(specs.get(parent if rel_dir else "", [])) if rel_dir else []
        own = _ignore_spec(Path(dirpath))
        if own is not None:
            active.append((rel_dir, own))
        specs[rel_dir] = active
        chain = chains[rel_dir] = (chains[parent] if rel_dir else ()) + (os.path.realpath(dirpath),)

        def ignored(rel: str, active=active) -> bool:
            return any(spec.match_file(rel[len(base):]) for base, spec in active)

        dirnames[:] = [d for d in sorted(dirnames)
                       if d not in ALWAYS_IGNORED and not ignored(rel_dir + d + "/")]
        for d in dirnames:
            link = os.path.join(dirpath, d)
            if os.path.islink(link) and os.path.realpath(link) in chain:
                raise PipelineValidationError(
                    f"{where}: symbolic link {rel_dir + d} in {folder} points back to its own ancestor folder "
                    f"{os.path.realpath(link)} (a loop); remove the link or list it in .amlignore")
        for f in sorted(filenames):
            if ignored(rel_dir + f):
                continue
            if not os.path.exists(os.path.join(dirpath, f)):
                raise PipelineValidationError(
                    f"{where}: symbolic link {rel_dir + f} in {folder} points to a missing target "
                    f"{os.path.realpath(os.path.join(dirpath, f))}; fix or remove it, or list it in .amlignore")
            found.append(rel_dir + f)
    return sorted(found)


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




class SnapshotIntegrityError(RuntimeError):
    """Bytes that differ from the content hash naming them: refused, never run or served."""


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
        """Store new file contents and the run's manifest; returns the manifest path.

        Each local file is read here and its bytes hashed: an object is only written under the hash of the bytes
        actually copied, and a file that no longer matches its manifest digest (changed after it was hashed for
        the cache key) fails the step rather than run other code than the key and the snapshot name."""
        folder = Path(folder)
        for rel, digest in manifest.items() if not str(folder).startswith(SNAPSHOT_PREFIX) else ():
            obj = self._object(digest)
            self._store_file(folder / rel, obj, digest, rel)
        runs = self.root / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        path = runs / f"{step_run_id}.json"
        path.write_text(json.dumps({"source_directory": str(folder), "files": manifest, "git": git}, indent=1))
        return path

    def _store_file(self, src: Path, obj: Path, digest: str, rel: str) -> None:
        """Write ``src`` as object ``obj`` (or check it against an existing one) by the hash of its bytes now."""
        if obj.exists():  # verified when it was written: only the local file can disagree
            actual = hash_file(src)
        else:
            obj.parent.mkdir(parents=True, exist_ok=True)
            tmp = obj.with_suffix(f".tmp{os.getpid()}")
            actual = copy_hashed(src, tmp)
            if actual == digest:
                shutil.copystat(src, tmp)
                os.replace(tmp, obj)
            else:
                tmp.unlink()
        if actual != digest:
            raise SnapshotIntegrityError(
                f"source file {rel} ({src}) changed after it was hashed for the cache key (expected blake3 "
                f"{digest}, it now holds {actual}); nothing ran with it: run the step again")

    def _copy_verified(self, digest: str, dest: Path) -> None:
        """Copy object ``digest`` to ``dest``, serving it only if its bytes still hash to ``digest``; a corrupt
        object is moved aside (kept for inspection, never served again) and the copy refused."""
        obj = self._object(digest)
        if copy_hashed(obj, dest) != digest:
            dest.unlink()
            os.replace(obj, obj.with_name(f"{obj.name}.corrupt"))
            raise SnapshotIntegrityError(f"snapshot object {obj} does not hold the bytes its digest names; it was "
                                         "moved aside: run the step again to store it afresh")
        shutil.copystat(obj, dest)

    def materialize(self, manifest: dict[str, str], target: str | Path) -> None:
        """The working copy a step runs in: copies of the stored objects (never links: a script that rewrites a
        file in its working folder must not change the stored snapshot). Every entry is path-checked first."""
        target = Path(target)
        check_manifest(manifest, "snapshot manifest")
        target.mkdir(parents=True, exist_ok=True)
        for rel, digest in manifest.items():
            dest = safe_join(target, rel, f"snapshot manifest entry {rel!r}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._copy_verified(digest, dest)


def check_manifest(files: Any, where: str) -> dict[str, str]:
    """A manifest ``{relative path: blake3 digest}`` whose every path stays inside the snapshot."""
    if not isinstance(files, dict):
        raise PipelineValidationError(f"{where}: 'files' must be an object of relative path -> digest")
    for rel, digest in files.items():
        relative_path(rel, f"{where}: files entry")
        check_digest(digest, f"{where}: files[{rel!r}]")
    return files


def read_uploaded_manifest(home: str | Path, source: str, where: str) -> dict[str, Any]:
    """The uploaded snapshot document ``mlpipe-snapshot:<digest>`` names, checked (a 400 in the API)."""
    digest = check_digest(source[len(SNAPSHOT_PREFIX):], f"{where}: source_directory")
    store = SnapshotStore(home)
    if not store.has(digest):
        raise PipelineValidationError(f"{where}: source snapshot {source!r} was not uploaded")
    try:
        doc = store.read_json(digest)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PipelineValidationError(f"{where}: source snapshot {source!r} is not a snapshot manifest") from exc
    if not isinstance(doc, dict):
        raise PipelineValidationError(f"{where}: source snapshot {source!r} is not a snapshot manifest")
    check_manifest(doc.get("files"), f"{where}: source snapshot {source!r}")
    return doc


def source_manifest(workspace: Any, step: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The step's snapshot manifest ``{relative path: content hash}`` and git info: read from the local folder,
    or from an uploaded snapshot (``mlpipe-snapshot:<digest>``) for a pipeline submitted from another machine."""
    source = step.get("source_directory")
    if not source:  # e.g. an AutoMLStep: no code of its own
        return {}, None
    if source.startswith(SNAPSHOT_PREFIX):
        doc = read_uploaded_manifest(workspace.home, source, f"step {step.get('name')!r}")
        return doc["files"], doc.get("git")
    from airflow_mlpipe.runtime.fingerprints import tree_manifest

    return tree_manifest(workspace.store, source, step.get("hash_paths"), step.get("name")), None
