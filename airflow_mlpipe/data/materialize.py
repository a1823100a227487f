"""Materialising a dataset definition into a local folder: a step input in ``mount`` or ``download`` mode,
or a v1 ``FileDataset.download`` / ``mount``.

A local store read in full is "mounted" as its real path (no copy); anything else — remote files, or a subset
selected by a transform — is copied, keeping the layout relative to the files' common base.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from airflow_mlpipe.data.dataset_definition import check_definition
from airflow_mlpipe.data.dataset_files import FileListing
from airflow_mlpipe.data.transfer import copy_to_local
from airflow_mlpipe.data.transforms import selected_files, selects_files


def real_folder(listing: FileListing, definition: dict[str, Any]) -> bool:
    """Whether the listing can be used in place: every file local and the definition selects no subset."""
    return bool(listing.matches) and not selects_files(definition) and all(m.is_local for m in listing.matches)


def copy_listing(listing: FileListing, target: str, overwrite: bool) -> list[str]:
    """Copy every matched file to ``target/<relative path>``; returns the absolute local paths."""
    out = []
    for m in listing.matches:
        local = os.path.join(target, *m.rel.split("/"))
        copy_to_local(m.fs, m.path, local, overwrite)
        out.append(os.path.abspath(local))
    return out


def download_dataset(workspace: Any, definition: dict[str, Any], target_path: str | None = None,
                     overwrite: bool = False, ignore_not_found: bool = False) -> list[str]:
    """Copy a dataset's files to ``target_path`` (a new temporary folder if None) keeping their layout."""
    target = target_path or tempfile.mkdtemp(prefix="mlpipe_dataset_")
    return copy_listing(selected_files(workspace, definition, ignore_not_found), target, overwrite)


def materialize(workspace: Any, definition: dict[str, Any], mode: str, target_dir: str) -> str:
    """Local path for a step input: the real path when mounting a local store, else a download.

    A dataset defined on one file gives the file path; otherwise the folder holding the files.
    """
    definition = check_definition(definition)
    listing = selected_files(workspace, definition)
    if mode == "mount" and real_folder(listing, definition) and (listing.single_file or listing.base):
        return listing.matches[0].path if listing.single_file else listing.base
    os.makedirs(target_dir, exist_ok=True)
    paths = copy_listing(listing, target_dir, True)
    if listing.single_file and paths:
        return paths[0]
    return os.path.abspath(target_dir)
