"""Authoring SDK: what a pipeline author gets at definition time (spec contents and clear errors)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_mlpipe import (
    ComputeTargetException,
    OutputFileDatasetConfig,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineValidationError,
    PythonScriptStep,
    StepSequence,
    UserErrorException,
)
from airflow_mlpipe.clients.submit import check_parameters
from airflow_mlpipe.contract.spec import canonical_json, check_spec, spec_hash


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("a.py", "b.py", "c.py"):
        (folder / name).write_text("print('hi')\n")
    return str(folder)


def test_sdk_imports_without_airflow():
    code = ("import sys, airflow_mlpipe as m; m.Pipeline; m.PythonScriptStep; m.PipelineData; m.Workspace; "
            "print('airflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_spec_of_two_step_pipeline(workspace, src):
    data = PipelineData("prepared")
    param = PipelineParameter("n", default_value=3)
    b = PythonScriptStep("b.py", name="consume", arguments=["--in", data, "--n", param, 7], inputs=[data],
                         source_directory=src)
    a = PythonScriptStep("a.py", name="produce", arguments=["--out", data], outputs=[data], source_directory=src)
    spec = Pipeline(workspace, steps=[b]).to_spec("p")  # closure pulls in the producer
    assert [s["name"] for s in spec["steps"]] == ["produce", "consume"]
    consume = spec["steps"][1]
    assert consume["depends_on"] == ["produce"]
    assert consume["arguments"] == [{"literal": "--in"}, {"input": "prepared"}, {"literal": "--n"},
                                    {"parameter": "n"}, {"literal": "7"}]
    assert consume["inputs"][0]["source"] == {"step": "produce", "task_id": "produce", "output": "prepared"}
    assert spec["parameters"] == {"n": {"type": "int", "default": 3}}
    assert a.outputs[0].producer is a
    check_spec(json.loads(json.dumps(spec)))
    # deterministic: the same definition gives the same spec hash
    assert spec_hash(spec) == spec_hash(Pipeline(workspace, steps=[b]).to_spec("p"))


def test_step_sequence_and_nested_lists(workspace, src):
    s1 = PythonScriptStep("a.py", name="one", source_directory=src)
    s2 = PythonScriptStep("b.py", name="two", source_directory=src)
    s3 = PythonScriptStep("c.py", name="three", source_directory=src)
    spec = Pipeline(workspace, steps=[StepSequence(steps=[s1, [s2, s3]])]).to_spec("seq")
    deps = {s["name"]: s["depends_on"] for s in spec["steps"]}
    assert deps == {"one": [], "two": ["one"], "three": ["one"]}


def test_missing_script_names_step_and_path(src):
    with pytest.raises(PipelineValidationError, match=r"Step 'train', argument 'script_name': script not found at: .*nope.py"):
        PythonScriptStep("nope.py", name="train", source_directory=src)


def test_pipeline_data_without_producer(workspace, src):
    orphan = PipelineData("orphan")
    step = PythonScriptStep("a.py", name="reader", arguments=[orphan], inputs=[orphan], source_directory=src)
    with pytest.raises(PipelineValidationError, match="'reader'.*PipelineData 'orphan' is consumed but produced by no step"):
        Pipeline(workspace, steps=[step])


def test_pipeline_data_with_two_producers(src):
    data = PipelineData("d")
    PythonScriptStep("a.py", name="first", outputs=[data], source_directory=src)
    with pytest.raises(PipelineValidationError, match="already an output of step 'first'"):
        PythonScriptStep("b.py", name="second", outputs=[data], source_directory=src)


def test_cycle_is_reported(workspace, src):
    a = PythonScriptStep("a.py", name="a", source_directory=src)
    b = PythonScriptStep("b.py", name="b", source_directory=src)
    a.run_after(b)
    b.run_after(a)
    with pytest.raises(PipelineValidationError, match="cycle"):
        Pipeline(workspace, steps=[a, b])


def test_duplicate_step_names(workspace, src):
    a = PythonScriptStep("a.py", name="same", source_directory=src)
    b = PythonScriptStep("b.py", name="same", source_directory=src)
    with pytest.raises(PipelineValidationError, match="two steps are named 'same'"):
        Pipeline(workspace, steps=[a, b])


def test_argument_not_in_inputs(src):
    data = PipelineData("d")
    with pytest.raises(PipelineValidationError, match=r"arguments\[1\].*'d' appears in arguments but is not in the inputs"):
        PythonScriptStep("a.py", name="s", arguments=["--x", data], source_directory=src)


def test_unsupported_compute_target(src):
    with pytest.raises(ComputeTargetException, match="Step 's'.*'AdlaCompute' is not supported"):
        PythonScriptStep("a.py", name="s", compute_target=("adla", "AdlaCompute"), source_directory=src)


def test_compute_target_becomes_queue(workspace, src):
    step = PythonScriptStep("a.py", name="s", compute_target="cpu-cluster", source_directory=src)
    spec = Pipeline(workspace, steps=[step]).to_spec("q")
    assert spec["steps"][0]["compute"] == {"name": "cpu-cluster", "type": "amlcompute", "queue": "cpu-cluster"}


def test_parameter_type_checks(workspace, src):
    p = PipelineParameter("pipeline_arg", default_value=10)
    step = PythonScriptStep("a.py", name="s", arguments=[p], source_directory=src)
    spec = Pipeline(workspace, steps=[step]).to_spec("params")
    assert check_parameters(spec, {"pipeline_arg": 20}) == {"pipeline_arg": 20}
    assert check_parameters(spec, {"pipeline_arg": "20"}) == {"pipeline_arg": 20}  # v1 REST sends strings
    with pytest.raises(UserErrorException, match="'pipeline_arg' expects a value of type integer, got 'abc'"):
        check_parameters(spec, {"pipeline_arg": "abc"})
    with pytest.raises(UserErrorException, match="expects a value of type integer, got True"):
        check_parameters(spec, {"pipeline_arg": True})
    with pytest.raises(UserErrorException, match="Pipeline parameter with name 'nope' does not exist"):
        check_parameters(spec, {"nope": 1})


def test_same_parameter_name_different_defaults(workspace, src):
    a = PythonScriptStep("a.py", name="a", arguments=[PipelineParameter("x", 1)], source_directory=src)
    b = PythonScriptStep("b.py", name="b", arguments=[PipelineParameter("x", 2)], source_directory=src)
    with pytest.raises(PipelineValidationError, match="same name 'x' but different values"):
        Pipeline(workspace, steps=[a, b])


def test_invalid_names_and_modes():
    with pytest.raises(ValueError, match="letters, digits and '_'"):
        PipelineData("bad name")
    with pytest.raises(ValueError, match="Invalid output mode"):
        PipelineData("x", output_mode="direct")
    with pytest.raises(ValueError, match="unsupported type"):
        PipelineParameter("p", default_value=[1, 2])


def test_output_file_dataset_config_in_arguments_is_an_output(workspace, src):
    out = OutputFileDatasetConfig(name="features")
    producer = PythonScriptStep("a.py", name="make", arguments=["--out", out], source_directory=src)
    consumer = PythonScriptStep("b.py", name="use", arguments=["--in", out.as_input("features_in")],
                                source_directory=src)
    spec = Pipeline(workspace, steps=[consumer]).to_spec("ofdc")
    make, use = spec["steps"]
    assert make["outputs"][0]["name"] == "features" and make["outputs"][0]["kind"] == "output_file_dataset"
    assert use["inputs"][0]["name"] == "features_in" and use["depends_on"] == ["make"]
    assert producer.outputs[0] is out


def test_canonical_json_is_order_independent():
    assert canonical_json({"b": 1, "a": [1, {"y": 2, "x": 1}]}) == canonical_json({"a": [1, {"x": 1, "y": 2}], "b": 1})
