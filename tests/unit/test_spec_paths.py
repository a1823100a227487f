"""Every path in a spec or a snapshot manifest stays inside its root; malformed specs fail naming the field."""

from __future__ import annotations

import copy
import os

import pytest

from airflow_mlpipe.contract.exceptions import PipelineValidationError, UserErrorException
from airflow_mlpipe.contract.paths import UnsafePathError, check_run_id, relative_path, safe_join
from airflow_mlpipe.contract.spec import check_spec

BASE = {
    "spec_version": 1, "name": "p", "parameters": {"n": {"type": "int", "default": 1}},
    "steps": [{
        "name": "prep", "task_id": "prep", "kind": "PythonScriptStep", "script_name": "prep.py",
        "source_directory": "mlpipe-snapshot:" + "a" * 64, "inputs": [], "outputs": [{"name": "out"}],
        "arguments": [], "parameters": [], "depends_on": [], "hash_paths": [],
    }],
}


def spec_with(**step_fields):
    spec = copy.deepcopy(BASE)
    spec["steps"][0].update(step_fields)
    return spec


@pytest.mark.parametrize("value", ["../../x", "/etc/passwd", "a/../../b", "C:\\x", "..\\..\\x", "a\x00b", ""])
def test_relative_path_refuses_escapes(value):
    with pytest.raises(UnsafePathError) as err:
        relative_path(value, "field.name")
    assert "field.name" in str(err.value)


def test_relative_path_normalises_harmless_forms():
    assert relative_path("./a//b/c.py", "f") == "a/b/c.py"
    assert relative_path("", "f", allow_empty=True) == ""


def test_safe_join_follows_symlinks(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "link")
    assert safe_join(root, "a/b.txt", "f") == root / "a" / "b.txt"
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safe_join(root, "link/x.txt", "manifest entry")


@pytest.mark.parametrize("fields, named", [
    ({"script_name": "../../evil.py"}, "script_name"),
    ({"script_name": "/tmp/evil.py"}, "script_name"),
    ({"outputs": [{"name": "out", "destination_path": "../../home"}]}, "destination_path"),
    ({"outputs": [{"name": "../x"}]}, "outputs[0]"),
    ({"hash_paths": ["../secret"]}, "hash_paths[0]"),
    ({"source_directory": "mlpipe-snapshot:../../x"}, "source_directory"),
    ({"source_directory": "/srv/code"}, "source_directory"),  # uploaded specs may not name server folders
    ({"source_directory": 5}, "source_directory"),
    ({"depends_on": 5}, "depends_on"),
    ({"depends_on": [5]}, "depends_on"),
    ({"inputs": [{"kind": "dataset", "name": "d", "dataset": {"type": "file", "source": {
        "format": "files", "paths": [{"datastore": "workspaceblobstore", "path": "../../../etc"}]}}}]}, "path"),
    ({"inputs": [{"kind": "data_reference", "name": "r", "datastore": "s", "path_on_datastore": "/abs"}]},
     "path_on_datastore"),
])
def test_uploaded_spec_rejections_name_the_field(fields, named):
    with pytest.raises(PipelineValidationError) as err:
        check_spec(spec_with(**fields), "pipeline 'p'", uploaded=True)
    assert named in str(err.value) and "prep" in str(err.value)


def test_specs_loaded_from_disk_get_the_same_path_checks(tmp_path):
    import json

    from airflow_mlpipe.contract.spec import load_spec

    path = tmp_path / "p.json"
    path.write_text(json.dumps(spec_with(script_name="../../x.py", source_directory=str(tmp_path))))
    with pytest.raises(PipelineValidationError, match="script_name"):
        load_spec(path)
    path.write_text(json.dumps(spec_with(source_directory=str(tmp_path))))
    assert load_spec(path)["steps"][0]["source_directory"] == str(tmp_path)  # a local folder is fine from disk


def test_too_many_steps_is_a_clear_error():
    spec = copy.deepcopy(BASE)
    spec["steps"] = [dict(BASE["steps"][0], name=f"s{i}", task_id=f"s{i}") for i in range(1001)]
    with pytest.raises(PipelineValidationError, match="at most 1000"):
        check_spec(spec)


def test_manifest_entries_cannot_leave_the_snapshot(tmp_path):
    from airflow_mlpipe.runtime.snapshot import SnapshotStore

    store = SnapshotStore(tmp_path / "home")
    with pytest.raises(UnsafePathError, match="'..'"):
        store.materialize({"../../escaped.txt": "b" * 64}, tmp_path / "work")
    with pytest.raises(UnsafePathError, match="absolute"):
        store.materialize({str(tmp_path / "abs.txt"): "b" * 64}, tmp_path / "work")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "abs.txt").exists()


@pytest.mark.parametrize("run_id", ["../../x", "a/b", "..", "", "x" * 251, 5])
def test_run_ids_from_conf_are_checked(run_id):
    with pytest.raises(UnsafePathError):
        check_run_id(run_id, "conf.run_id")
    assert check_run_id("manual__2026-11-29T20:27:22.086427+00:00", "f")


@pytest.mark.parametrize("ptype, value", [("float", "nan"), ("float", "inf"), ("float", float("-inf")),
                                          ("int", 2**63), ("int", str(2**64)), ("int", -(2**63) - 1)])
def test_parameter_values_out_of_range_are_user_errors(ptype, value):
    from airflow_mlpipe.sdk.parameters import coerce_parameter

    with pytest.raises(UserErrorException, match="'n'"):
        coerce_parameter(None, "n", ptype, value)


def test_parameter_defaults_out_of_range_fail_at_definition():
    from airflow_mlpipe import PipelineParameter

    with pytest.raises(UserErrorException, match="default_value"):
        PipelineParameter("ratio", default_value=float("nan"))
    with pytest.raises(UserErrorException, match="64-bit"):
        PipelineParameter("big", default_value=2**70)
