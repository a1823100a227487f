"""Where a step's outputs go, and their staging and atomic commit: nothing is visible at the final path until
the step succeeded, and a retry finds (and replaces) what earlier tries of the same step run left behind."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlpipe.contract.paths import relative_path
from airflow_mlpipe.data.hashing import hash_tree

if TYPE_CHECKING:
    from airflow_mlpipe.runtime.step_runner import StepExecution


def path_segment(value: str) -> str:
    return re.sub(r"[^\w.-]", "_", value)


def output_location(ex: StepExecution, out: dict[str, Any]) -> dict[str, str]:
    datastore = out.get("datastore") or ex.pipeline.get("default_datastore") or ex.workspace._default_datastore_name
    if out.get("destination_path"):
        rel = (out["destination_path"].replace("{run-id}", path_segment(ex.pipeline_run_id))
               .replace("{output-name}", out["name"]).strip("/"))
    else:
        rel = f"azureml/{path_segment(ex.pipeline_run_id)}/{ex.step['task_id']}/{out['name']}"
    # the step replaces whatever is at this path on commit: it must stay inside the datastore
    rel = relative_path(rel, f"Step {ex.step['name']!r}, output {out['name']!r}: destination_path")
    return {"datastore": datastore, "path": rel}


#: staging folders of local outputs are ``<output><PARTIAL_MARK><owner>-t<try>-<random>``, beside the output
PARTIAL_MARK = ".partial-"


def partial_owner(ex: StepExecution) -> str:
    """A short token of the step run: all tries of one step run share it, other step runs differ."""
    import hashlib

    return hashlib.sha1(ex.step_run_id.encode()).hexdigest()[:10]


def remove_stale_partials(final: str, owner: str) -> list[str]:
    """Remove staging folders left beside ``final`` by earlier tries of this step run (killed before they could
    clean up): Airflow runs one try of a task at a time, so while this try runs they are dead. Staging folders
    of other step runs (a shared ``destination_path``) are left to their owners' reconciliation."""
    parent, name = os.path.split(final)
    prefix = f"{name}{PARTIAL_MARK}{owner}-"
    try:
        stale = [os.path.join(parent, n) for n in os.listdir(parent) if n.startswith(prefix)]
    except OSError:
        return []
    for path in stale:
        StagedOutputs.discard_one(path)
    return stale


def run_uri(store: Any, full_path: str) -> str:
    """How a step that runs elsewhere names a path of ``store``: a local path as is (the local Databricks
    emulator reads it), else ``<protocol>://<path in the store's filesystem>``."""
    return full_path if store.is_local else f"{store.url_protocol}://{full_path}"


class StagedOutputs:
    """Staging and atomic commit of a step's outputs."""

    def __init__(self, ex: StepExecution, workdir: Path | None, remote_tag: str | None = None,
                 fresh: bool = False) -> None:
        """Local datastores stage beside the final path; object stores stage in ``workdir`` (uploaded on commit),
        or, with ``remote_tag`` (a step that runs elsewhere, e.g. on Databricks, and writes there itself), beside
        the final path on the store under a name fixed by the tag, so a retry finds what an earlier try staged;
        ``fresh`` (a new submission) first removes what earlier attempts staged, and records the staging for
        liveness as a local step's staging is."""
        from airflow_mlpipe.data.datastore_location import DatastoreLocation

        self.ex = ex
        self.items: list[dict[str, Any]] = []
        for out in ex.step["outputs"]:
            loc = output_location(ex, out)
            store = DatastoreLocation.get(ex.workspace, loc["datastore"])
            final = store.full_path(loc["path"])
            on_store = remote_tag is not None and not store.is_local
            # only the parent exists: a v1 script may write one file at the output path, or make a folder there
            if remote_tag is not None:
                staging = f"{final}{PARTIAL_MARK}{partial_owner(ex)}-{remote_tag}"
                if fresh and store.is_local:
                    remove_stale_partials(final, partial_owner(ex))
                elif fresh and store.fs.exists(staging):
                    store.fs.rm(staging, recursive=True)
                if store.is_local:  # a notebook may write files into it straight away
                    os.makedirs(staging, exist_ok=True)
            elif store.is_local:
                remove_stale_partials(final, partial_owner(ex))
                staging = f"{final}{PARTIAL_MARK}{partial_owner(ex)}-t{ex.try_number}-{uuid.uuid4().hex[:6]}"
            else:
                assert workdir is not None, "outputs on an object store are staged in a work folder"
                staging = str(workdir / "outputs" / out["name"])
            if not on_store:
                Path(staging).parent.mkdir(parents=True, exist_ok=True)
            self.items.append({"spec": out, "loc": loc, "store": store, "final": final, "staging": staging,
                               "on_store": on_store})
        partials = [i["staging"] for i in self.items if PARTIAL_MARK in i["staging"] and not i["on_store"]]
        if partials and (remote_tag is None or fresh):  # whoever finds this step run dead removes them (liveness)
            ex.workspace.store.merge_step_run_details(ex.step_run_id, staging=partials)

    def local_paths(self) -> dict[str, str]:
        return {i["spec"]["name"]: i["staging"] for i in self.items}

    def staging_uris(self) -> dict[str, str]:
        """Where a step running elsewhere writes each output: a local path, or the store's URI of the staging."""
        return {i["spec"]["name"]: run_uri(i["store"], i["staging"]) for i in self.items}

    def discard(self) -> None:
        for item in self.items:
            if item["on_store"]:
                if item["store"].fs.exists(item["staging"]):
                    item["store"].fs.rm(item["staging"], recursive=True)
            else:
                self.discard_one(item["staging"])

    @staticmethod
    def discard_one(path: str) -> None:
        if os.path.isfile(path):
            os.unlink(path)
        else:
            shutil.rmtree(path, ignore_errors=True)

    def commit(self) -> dict[str, dict[str, Any]]:
        """Move every staged output into place; only then is it visible (and pushed to consumers)."""
        committed: dict[str, dict[str, Any]] = {}
        for item in self.items:
            store, final, staging = item["store"], item["final"], item["staging"]
            fs = store.fs
            if item["on_store"]:  # written on the store by the remote step: a move within the store
                if fs.exists(final):
                    fs.rm(final, recursive=True)
                if fs.exists(staging):
                    fs.mv(staging, final, recursive=True)
                else:
                    fs.makedirs(final, exist_ok=True)
            elif store.is_local:
                if not os.path.exists(staging):
                    os.makedirs(staging)  # the script wrote nothing: an empty output, as in v1
                if os.path.isdir(final):
                    shutil.rmtree(final)  # a retry of this same step run replaces its own earlier output
                elif os.path.exists(final):
                    os.unlink(final)
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(staging, final)
            else:  # uploaded in parallel, hashed on the way, published by a manifest written last
                from fsspec.implementations.local import LocalFileSystem

                from airflow_mlpipe.data.file_copy import copy

                if not os.path.exists(staging):
                    os.makedirs(staging)
                result = copy(LocalFileSystem(), staging, fs, final,
                              reference_type="file" if os.path.isfile(staging) else "directory")
                self.discard_one(staging)
                committed[item["spec"]["name"]] = self._record(item, result.content_hash, result.bytes,
                                                               result.files)
                continue
            content_hash, size, count = hash_tree(fs, final) if fs.exists(final) else ("blake3:empty", 0, 0)
            committed[item["spec"]["name"]] = self._record(item, content_hash, size, count)
        return committed

    def _record(self, item: dict[str, Any], content_hash: str, size: int, count: int) -> dict[str, Any]:
        """What consumers get through XCom for one committed output."""
        spec = item["spec"]
        return {
            "uri": item["store"].uri(item["loc"]["path"]),
            "datastore": item["loc"]["datastore"],
            "path": item["loc"]["path"],
            "content_hash": content_hash,
            "format": spec.get("format", "files"),
            "size": size,
            "files": count,
            "pipeline_output_name": spec.get("pipeline_output_name"),
            "producer_run_id": self.ex.step_run_id,
        }
