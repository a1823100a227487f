"""Dataset transforms: the recorded ``take``/``skip``/``take_sample``/``random_split`` and column selections,
applied to the file list of a file dataset or to the rows of a tabular one.

Random transforms carry their seed in the definition, so the same definition always selects the same rows or
files and the two parts of a split stay complementary.
"""

from __future__ import annotations

from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.dataset_files import FileListing, FileMatch, list_files

#: transforms that select files (a dataset with one cannot be mounted as its real folder)
FILE_TRANSFORMS = ("take", "skip", "take_sample", "random_split")


def selects_files(definition: dict[str, Any]) -> bool:
    """Whether the definition's transforms select a subset of its files."""
    return any(t.get("op") in FILE_TRANSFORMS for t in definition.get("transforms") or [])


def random_mask(n: int, probability: float, seed: int) -> Any:
    import numpy as np

    return np.random.default_rng(seed).random(n) < probability


def apply_table_transforms(df: Any, transforms: list[dict[str, Any]]) -> Any:
    """Apply a tabular dataset's transforms to a pandas frame, in order."""
    for t in transforms:
        op = t.get("op")
        if op == "take":
            df = df.iloc[: int(t["count"])]
        elif op == "skip":
            df = df.iloc[int(t["count"]):]
        elif op == "take_sample":
            df = df[random_mask(len(df), float(t["probability"]), int(t["seed"]))]
        elif op == "random_split":
            mask = random_mask(len(df), float(t["percentage"]), int(t["seed"]))
            df = df[mask if int(t.get("part", 0)) == 0 else ~mask]
        elif op == "keep_columns":
            cols = [c for c in t["columns"] if c in df.columns]
            missing = [c for c in t["columns"] if c not in df.columns]
            if missing and t.get("validate"):
                raise UserErrorException(f"keep_columns: columns {missing} are not in the dataset")
            df = df[cols]
        elif op == "drop_columns":
            df = df.drop(columns=[c for c in t["columns"] if c in df.columns])
        else:
            raise UserErrorException(f"Unknown tabular transform {op!r}")
        df = df.reset_index(drop=True)
    return df


def apply_file_transforms(matches: list[FileMatch], transforms: list[dict[str, Any]]) -> list[FileMatch]:
    """Apply a dataset's transforms to its files, in order (column transforms select no files)."""
    for t in transforms:
        op = t.get("op")
        if op == "take":
            matches = matches[: int(t["count"])]
        elif op == "skip":
            matches = matches[int(t["count"]):]
        elif op == "take_sample":
            mask = random_mask(len(matches), float(t["probability"]), int(t["seed"]))
            matches = [m for m, keep in zip(matches, mask, strict=True) if keep]
        elif op == "random_split":
            mask = random_mask(len(matches), float(t["percentage"]), int(t["seed"]))
            part0 = int(t.get("part", 0)) == 0
            matches = [m for m, keep in zip(matches, mask, strict=True) if bool(keep) == part0]
        elif op in ("keep_columns", "drop_columns"):
            continue  # file-level view of a tabular dataset: column transforms do not select files
        else:
            raise UserErrorException(f"Unknown file transform {op!r}")
    return matches


def selected_files(workspace: Any, definition: dict[str, Any], ignore_not_found: bool = False) -> FileListing:
    """The files a definition reads after its file-selecting transforms."""
    listing = list_files(workspace, definition["source"], ignore_not_found)
    listing.matches = apply_file_transforms(listing.matches, definition.get("transforms") or [])
    return listing
