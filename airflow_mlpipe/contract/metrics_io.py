"""Read and write the step's metrics JSON-lines file (see :mod:`airflow_mlpipe.contract.run_context`).

The script appends one record per ``Run.log*`` call; the operator reads them back when the script ends, even
after a crash, so the reader tolerates a half-written last line. Each record is written with a single
``O_APPEND`` write so that threads or child processes of the script cannot interleave records.

Besides metric records, a step script's ``Run.tag``/``add_properties`` and ``complete``/``fail``/``cancel``
append records of kind ``tag``, ``property`` and ``status`` (the script never talks to the store);
:func:`split_records` separates them for the operator.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

#: kinds that are metrics (stored with ``Store.add_metrics``)
METRIC_KINDS = frozenset(
    {
        "scalar",
        "list",
        "row",
        "table",
        "image",
        "confusion_matrix",
        "accuracy_table",
        "residuals",
        "predictions",
    }
)
#: kinds that carry run metadata rather than metrics
TAG_KIND = "tag"
PROPERTY_KIND = "property"
STATUS_KIND = "status"
_META_KINDS = frozenset({TAG_KIND, PROPERTY_KIND, STATUS_KIND})


def make_record(
    name: str, kind: str, value: Any, step: Any = None, description: str | None = ""
) -> dict[str, Any]:
    """One record in the contract's shape; ``value`` must already be JSON serialisable."""
    return {"name": name, "kind": kind, "value": value, "step": step, "description": description or ""}


def append_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append ``record`` as one line, in one write, so concurrent writers never interleave."""
    data = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        while written < len(data):  # pragma: no cover - only for huge records on odd filesystems
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records in file order; a missing file is empty, a truncated last line (crash mid-write) is dropped.

    A corrupt line elsewhere is skipped with a warning rather than losing every other metric of the run.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return []
    text = raw.decode("utf-8", errors="replace")
    lines = text.split("\n")
    complete_last = text.endswith("\n")
    records: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        is_last = index == len(lines) - 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if is_last and not complete_last:
                log.warning("metrics file %s: ignoring a truncated last record", p)
            else:
                log.warning("metrics file %s: skipping unreadable line %d", p, index + 1)
            continue
        if not isinstance(record, dict) or "name" not in record:
            log.warning("metrics file %s: skipping line %d (not a metric record)", p, index + 1)
            continue
        records.append(record)
    return records


class RunRecords(NamedTuple):
    """A metrics file split by purpose: metrics for ``Store.add_metrics``, the rest for the step-run row."""

    metrics: list[dict[str, Any]]
    tags: dict[str, Any]
    properties: dict[str, Any]
    #: last status the script set with ``run.complete()``/``fail()``/``cancel()`` (None if it never did)
    status: str | None
    #: error details given to ``run.fail()``
    error: Any


def split_records(records: Iterable[dict[str, Any]]) -> RunRecords:
    """Separate metric records from tag/property/status records, so the operator stores each where it belongs."""
    out = RunRecords([], {}, {}, None, None)
    status: str | None = None
    error: Any = None
    for rec in records:
        kind = rec.get("kind", "scalar")
        if kind == TAG_KIND:
            out.tags[rec["name"]] = rec.get("value")
        elif kind == PROPERTY_KIND:
            out.properties[rec["name"]] = rec.get("value")
        elif kind == STATUS_KIND:
            status = rec.get("value")
            error = rec.get("description") or None
        else:
            out.metrics.append(rec)
    return out._replace(status=status, error=error)


def fold_metrics(records: Iterable[dict[str, Any]], name: str | None = None) -> dict[str, Any]:
    """The v1 ``get_metrics()`` shape from raw records (same rules as ``Store.get_metrics``).

    A name logged once is its value, logged several times a list; rows become ``{column: [values]}``;
    lists and tables are their value.
    """
    out: dict[str, Any] = {}
    for rec in records:
        kind = rec.get("kind", "scalar")
        if kind in _META_KINDS or (name and rec.get("name") != name):
            continue
        key, value = rec["name"], rec.get("value")
        if kind == "row":
            table = out.setdefault(key, {})
            for col, val in (value or {}).items():
                table.setdefault(col, []).append(val)
        elif kind in ("list", "table"):
            out[key] = value
        elif key in out:
            prev = out[key]
            out[key] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            out[key] = value
    return out
