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
from pathlib import Path
from typing import Any

from airflow_mlpipe.exceptions import PipelineValidationError

SPEC_VERSION = 1


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8; never ``str()`` of Python objects."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def check_spec(spec: Any, source: str = "spec") -> dict[str, Any]:
    """Validate the envelope of a loaded spec so a bad file fails with a message naming it."""
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
    names = set()
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or not step.get("name") or not step.get("task_id") or not step.get("kind"):
            raise PipelineValidationError(f"{source}: steps[{i}] needs name, task_id and kind")
        for dep in step.get("depends_on", []):
            if dep not in names:
                raise PipelineValidationError(
                    f"{source}: step {step['name']!r} depends on {dep!r}, which is not listed before it"
                )
        names.add(step["name"])
    return spec


def load_spec(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PipelineValidationError(f"{path}: not valid JSON: {exc}") from exc
    return check_spec(spec, str(path))


def step_by_name(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in spec["steps"]}
