"""The cache plan: which steps can be reused before anything runs, and why each other step will run.

A step is decidable up front when all its inputs are external (datasets, data references, parameters) or
come from steps that are themselves reused (their recorded output hashes are known). Steps downstream of a
step that runs are decided when their inputs exist (early cut-off in the step's own task).
"""

from __future__ import annotations

import time
from typing import Any

from airflow_mlpipe.contract.step_kinds import step_kind
from airflow_mlpipe.runtime.cache import Decision, compute_key, explain_miss, lookup
from airflow_mlpipe.runtime.snapshot import source_manifest


def plan_steps(workspace: Any, steps: list[dict[str, Any]], parameter_values: dict[str, Any],
               regenerate_outputs: bool = False) -> tuple[list[Decision], dict[str, float]]:
    """Decisions in spec (topological) order, and the time the check took per step (seconds)."""
    decisions: dict[str, Decision] = {}
    timings: dict[str, float] = {}
    for step in steps:
        started = time.perf_counter()
        decisions[step["name"]] = _decide(workspace, step, decisions, parameter_values, regenerate_outputs)
        timings[step["name"]] = time.perf_counter() - started
    return list(decisions.values()), timings


def _decide(workspace: Any, step: dict[str, Any], decided: dict[str, Decision], values: dict[str, Any],
            regenerate: bool) -> Decision:
    name, task_id = step["name"], step["task_id"]
    if regenerate:
        return Decision(name, task_id, "run", "regenerate_outputs=True")
    if not step.get("allow_reuse", True):
        return Decision(name, task_id, "run", "allow_reuse=False")
    if not step_kind(step["kind"], f"Step {name!r}").plannable:
        return Decision(name, task_id, "pending", f"a {step['kind']} is decided in its own task")
    upstream: dict[str, dict[str, Any]] = {}
    for inp in step.get("inputs", []):
        if inp["kind"] != "pipeline_data":
            continue
        producer = decided.get(inp["source"]["step"])
        if producer is None or producer.action != "reuse":
            return Decision(name, task_id, "pending",
                            f"decided when step {inp['source']['step']!r} has run (reused if its output "
                            "content is unchanged)")
        upstream[inp["name"]] = producer.outputs[inp["source"]["output"]]
    manifest, _ = source_manifest(workspace, step)
    key = compute_key(workspace, step, manifest, upstream, values)
    entry, why = lookup(workspace, key.key)
    if entry is not None:
        return Decision(name, task_id, "reuse", f"same inputs, code and settings as step run {entry['step_run_id']}",
                        key.key, entry)
    changes = ([why] if why else []) + explain_miss(workspace, step, key)
    return Decision(name, task_id, "run", "; ".join(changes), key.key, changes=changes, components=key.components)


def format_plan(decisions: list[Decision]) -> str:
    width = max((len(d.step) for d in decisions), default=4)
    lines = []
    for d in decisions:
        lines.append(f"{d.step:<{width}}  {d.action.upper():<7}  {d.reason}")
    return "\n".join(lines)
