"""Dataset definitions: the JSON document a dataset is, and its identity.

A definition is ``{"type", "source": {"format", "paths", "options"}, "transforms", "id"?, "name"?,
"version"?}``. Step processes receive it and reopen it; its hash without the registration fields names what
is read. Seeds of random transforms are fixed in the definition (derived from it when not given), so the same
definition always yields the same rows and complementary splits stay complementary.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException

DATASET_TYPES = ("file", "tabular")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def definition_core(definition: dict[str, Any]) -> dict[str, Any]:
    """The part of a definition that says what is read (type, source, transforms)."""
    return {k: definition.get(k) for k in ("type", "source", "transforms")}


def definition_hash(definition: dict[str, Any]) -> str:
    """sha256 of the canonical definition without registration fields (id, name, version)."""
    return hashlib.sha256(canonical_json(definition_core(definition)).encode()).hexdigest()


def check_definition(definition: Any) -> dict[str, Any]:
    """``definition`` if it is a dataset definition, else a UserErrorException."""
    if not isinstance(definition, dict) or definition.get("type") not in DATASET_TYPES:
        raise UserErrorException(f"Not a dataset definition: {definition!r}")
    return definition


def seed_for(definition: dict[str, Any], seed: int | None) -> int:
    """The given seed, else one derived from the definition (the same definition gives the same rows)."""
    return int(seed) if seed is not None else int(definition_hash(definition)[:8], 16)


def header_mode(value: Any) -> str:
    """True / ALL_FILES_HAVE_SAME_HEADERS → 'all'; False / NO_HEADERS → 'none'; FROM_FIRST_FILE → 'first'."""
    value = getattr(value, "value", value)
    if value is True or value in (2, 3, "all", "all_files_have_same_headers", "all_files_different_headers"):
        return "all"
    if value is False or value in (0, "none", "no_headers"):
        return "none"
    if value in (1, "first", "from_first_file"):
        return "first"
    raise UserErrorException(f"header={value!r} is not supported; use True, False or a PromoteHeadersBehavior")
