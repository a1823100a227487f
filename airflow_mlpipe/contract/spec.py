"""The PipelineSpec: the one contract between authoring, compiling and running.

A versioned JSON document::

    {"spec_version": 1, "name", "description", "workspace": {...ref...}, "default_datastore",
     "parameters": {name: {"type": "int"|"float"|"bool"|"string"|"dataset"|"datapath", "default": ...}},
     "continue_on_step_failure": false,
     "steps": [{"name", "task_id", "kind", "inputs": [...], "outputs": [...], "arguments": [...tokens...],
                "parameters": [...names...], "depends_on": [...step names...], "allow_reuse", "version", ...}]}

Steps are listed in a topological order. Argument tokens are ``{"literal": s}``, ``{"input": name}``,
``{"output": name}`` or ``{"parameter": name}``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from airflow_mlpipe.contract import step_kinds
from airflow_mlpipe.contract.exceptions import PipelineValidationError

SPEC_VERSION = 1
#: ``source_directory`` of a step whose snapshot was uploaded to the server (remote submission)
SNAPSHOT_PREFIX = "mlpipe-snapshot:"


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8; never ``str()`` of Python objects."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def check_spec(spec: Any, source: str = "spec", uploaded: bool = False) -> dict[str, Any]:
    """Validate a loaded spec so that a bad or hostile document fails with a message naming the field.

    Checks the envelope, the types of the fields the compiler and runtime index into, and every path (relative
    to its root, no ``..``, not absolute). ``uploaded``: the spec came through the plugin API, so a step's code
    must be an uploaded snapshot (``mlpipe-snapshot:<digest>``), never a folder on the server.
    """
    if not isinstance(spec, dict):
        raise PipelineValidationError(f"{source}: a pipeline spec must be a JSON object")
    version = spec.get("spec_version")
    if version != SPEC_VERSION:
        raise PipelineValidationError(
            f"{source}: spec_version {version!r} is not supported (this airflow-mlpipe reads {SPEC_VERSION})"
        )
    steps = spec.get("steps")
    if not isinstance(steps, list) or not steps:
        raise PipelineValidationError(f"{source}: 'steps' must be a non-empty list")
    if len(steps) > MAX_STEPS:
        raise PipelineValidationError(f"{source}: {len(steps)} steps; at most {MAX_STEPS} are supported")
    if not isinstance(spec.get("parameters", {}), dict):
        raise PipelineValidationError(f"{source}: 'parameters' must be an object")
    for pname, param in spec.get("parameters", {}).items():
        if not isinstance(param, dict) or param.get("type") not in PARAMETER_TYPES:
            raise PipelineValidationError(f"{source}: parameters.{pname}: needs a 'type', one of {PARAMETER_TYPES}")
    names: set[str] = set()
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or not all(isinstance(step.get(k), str) and step.get(k)
                                                 for k in ("name", "task_id", "kind")):
            raise PipelineValidationError(f"{source}: steps[{i}] needs name, task_id and kind (strings)")
        _check_step(step, f"{source}: step {step['name']!r}", uploaded)
        for dep in step.get("depends_on", []):
            if dep not in names:
                raise PipelineValidationError(
                    f"{source}: step {step['name']!r} depends on {dep!r}, which is not listed before it"
                )
        names.add(step["name"])
    return spec


MAX_STEPS = 1000
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
PARAMETER_TYPES = ("int", "float", "bool", "string", "dataset", "datapath")
_LISTS = ("depends_on", "inputs", "outputs", "arguments", "parameters", "hash_paths", "after")


def _check_step(step: dict[str, Any], where: str, uploaded: bool) -> None:
    from airflow_mlpipe.contract.paths import check_digest, relative_path

    step_kinds.step_kind(step["kind"], where)

    for key in _LISTS:
        if not isinstance(step.get(key, []), list):
            raise PipelineValidationError(f"{where}: {key!r} must be a list, not {type(step[key]).__name__}")
    for key in ("depends_on", "parameters", "after"):
        if not all(isinstance(x, str) for x in step.get(key, [])):
            raise PipelineValidationError(f"{where}: {key!r} must be a list of names (strings)")
    for key in ("inputs", "outputs", "arguments"):
        if not all(isinstance(x, dict) for x in step.get(key, [])):
            raise PipelineValidationError(f"{where}: every entry of {key!r} must be an object")
    for key in ("source_directory", "script_name"):
        if step.get(key) is not None and not isinstance(step[key], str):
            raise PipelineValidationError(f"{where}: {key!r} must be a string, not {type(step[key]).__name__}")
    source = step.get("source_directory")
    if source and source.startswith(SNAPSHOT_PREFIX):
        check_digest(source[len(SNAPSHOT_PREFIX):], f"{where}: source_directory")
    elif source and uploaded:
        raise PipelineValidationError(
            f"{where}: source_directory {source!r} must name an uploaded snapshot ({SNAPSHOT_PREFIX}<digest>): "
            "a submitted spec cannot point at a folder on the server")
    if step.get("script_name") is not None:
        relative_path(step["script_name"], f"{where}: script_name")
    for j, rel in enumerate(step.get("hash_paths", [])):
        relative_path(rel, f"{where}: hash_paths[{j}]")
    for j, out in enumerate(step.get("outputs", [])):
        if not isinstance(out.get("name"), str) or not _NAME.match(out["name"]):
            raise PipelineValidationError(f"{where}: outputs[{j}] needs a name of letters, digits, _ . - "
                                          f"(got {out.get('name')!r})")
        if out.get("destination_path") is not None:
            relative_path(out["destination_path"], f"{where}: outputs[{j}] ({out['name']}).destination_path")
    for j, inp in enumerate(step.get("inputs", [])):
        _check_data_paths(inp, f"{where}: inputs[{j}]")
    _check_data_paths(step.get("transfer") or {}, f"{where}: transfer")


def _check_data_paths(value: Any, where: str) -> None:
    """Every ``{"datastore": ..., "path": ...}`` (dataset sources, data references, data paths) stays inside its
    datastore."""
    from airflow_mlpipe.contract.paths import relative_path

    if isinstance(value, dict):
        if "datastore" in value:
            for key in ("path", "path_on_datastore"):
                if value.get(key) is not None:
                    relative_path(value[key], f"{where}.{key}", allow_empty=True)
        for key, item in value.items():
            if isinstance(item, dict | list) and key != "_data":
                _check_data_paths(item, f"{where}.{key}")
    elif isinstance(value, list):
        for k, item in enumerate(value):
            _check_data_paths(item, f"{where}[{k}]")


def load_spec(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PipelineValidationError(f"{path}: not valid JSON: {exc}") from exc
    return check_spec(spec, str(path))
