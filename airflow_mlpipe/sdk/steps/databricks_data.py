"""Where a DatabricksStep's inputs and outputs live, so data a real Databricks workspace cannot reach fails early.

A Databricks cluster reads and writes cloud storage (Blob, ADLS, S3, DBFS), never a folder on the machine
that submitted the pipeline. The local emulator runs on this machine and can, so only real targets are checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_mlpipe.contract.exceptions import PipelineValidationError, UserErrorException
from airflow_mlpipe.data.datastore_location import datastore_record, default_datastore_name
from airflow_mlpipe.data.datastore_urls import protocol_of

#: fsspec protocols of folders on this machine (``memory://`` test stores are the tests' business)
LOCAL_PROTOCOLS = {"file", "local"}


def _name_of(store: Any) -> str | None:
    return store if isinstance(store, str) or store is None else getattr(store, "name", None)


def _paths_of_definition(definition: Any) -> Iterator[tuple[str | None, str | None]]:
    """``(datastore name, uri)`` of each path a dataset definition reads."""
    source = (definition or {}).get("source") if isinstance(definition, dict) else None
    for entry in (source or {}).get("paths") or []:
        if isinstance(entry, dict):
            yield entry.get("datastore"), entry.get("uri")


def _input_locations(spec: dict[str, Any], parameters: dict[str, Any]) -> Iterator[tuple[str | None, str | None]]:
    """``(datastore name or None for the default, uri)`` of what one input spec reads."""
    kind = spec.get("kind")
    if kind in ("data_reference", "data_path"):
        yield spec.get("datastore"), None
    elif kind == "dataset":
        yield from _paths_of_definition(spec.get("dataset"))
    elif "_data" in (spec.get("source") or {}):
        yield _name_of(spec["source"]["_data"].datastore), None
    elif kind in ("dataset_parameter", "datapath_parameter"):
        default = getattr(parameters.get(spec.get("parameter")), "default_value", None)
        if hasattr(default, "to_definition"):
            yield from _paths_of_definition(default.to_definition())
        elif default is not None and hasattr(default, "datastore_name"):
            yield default.datastore_name, None


def _local_url(workspace: Any, name: str) -> str | None:
    """The datastore's URL when it is a folder of this machine, else None (unknown names fail at run time)."""
    try:
        url = datastore_record(workspace, name)["url"]
    except UserErrorException:
        return None
    return url if protocol_of(url) in LOCAL_PROTOCOLS else None


def check_remote_reachable(step: Any, pipeline: Any, workspace: Any) -> None:
    """Fail naming the step and the input/output whose data sits on this machine's disk."""
    if workspace is None or getattr(workspace, "store", None) is None:
        return
    default = _name_of(getattr(pipeline, "default_datastore", None)) or default_datastore_name(workspace)
    found: list[tuple[str, str, str, str]] = []  # (argument, port name, where, url)
    for spec in step._inputs.values():
        for store, uri in _input_locations(spec, step._parameters):
            if uri is not None:
                if protocol_of(uri) in LOCAL_PROTOCOLS:
                    found.append(("inputs", spec["name"], "a path", uri))
                continue
            name = store or default
            url = _local_url(workspace, name)
            if url is not None:
                found.append(("inputs", spec["name"], f"datastore {name!r}", url))
    for out in step._outputs.values():
        name = out._datastore_name() or default
        url = _local_url(workspace, name)
        if url is not None:
            found.append(("outputs", out.output_name, f"datastore {name!r}", url))
    if found:
        argument, port, where, url = found[0]
        kind = "input" if argument == "inputs" else "output"
        others = "" if len(found) == 1 else f" (and {len(found) - 1} more: {sorted({f[1] for f in found[1:]})})"
        raise PipelineValidationError(
            f"Step {step.name!r}, argument {argument!r}: {kind} {port!r} is on {where} ({url}), a folder on this "
            f"machine{others}; a real Databricks workspace cannot read this machine's folders. Register an Azure "
            "Blob, ADLS Gen2 or S3 datastore (Datastore.register_azure_blob_container(...), "
            "register_azure_data_lake_gen2(...) or Datastore.register(ws, name, 's3://...', conn_id=...)) and "
            "put the data there, or give the pipeline such a default_datastore"
        )
