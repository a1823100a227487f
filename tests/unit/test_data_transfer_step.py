"""DataTransferStep authoring: v1's rules fail at definition time naming the step and the argument, and the spec
says what is copied where, with the destination as the step's one output (``get_output()``)."""

from __future__ import annotations

import json

import pytest

from airflow_mlpipe import (
    AmlCompute,
    ComputeTarget,
    DataFactoryCompute,
    DataPath,
    DataPathComputeBinding,
    DataReference,
    Datastore,
    DataTransferStep,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineValidationError,
    PythonScriptStep,
    SqlDataReference,
    StoredProcedureParameter,
    StoredProcedureParameterType,
)
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.contract.spec import check_spec


def _spec(ws, *steps):
    spec = Pipeline(ws, steps=list(steps)).to_spec("p")
    check_spec(json.loads(json.dumps(spec)))
    return spec


@pytest.fixture
def adf(workspace):
    return ComputeTarget.create(workspace, "adf", DataFactoryCompute.provisioning_configuration())


@pytest.fixture
def stores(workspace, tmp_path):
    src = Datastore.register(workspace, "src_files", str(tmp_path / "src"))
    dst = Datastore.register(workspace, "dst_files", str(tmp_path / "dst"))
    return src, dst


def test_required_arguments_and_reference_types(workspace, adf, stores):
    src, dst = stores
    a, b = DataReference(src, "a", "in"), DataReference(dst, "b", "out")
    for missing in ("source_data_reference", "destination_data_reference", "compute_target"):
        kwargs = {"name": "copy", "source_data_reference": a, "destination_data_reference": b, "compute_target": adf}
        kwargs[missing] = None
        with pytest.raises(PipelineValidationError, match=f"'copy'.*{missing}.*required"):
            DataTransferStep(**kwargs)
    with pytest.raises(ValueError, match="source_reference_type.*'file' or 'directory'.*'folder'"):
        DataTransferStep("copy", a, b, adf, source_reference_type="folder")
    step = DataTransferStep("copy", a, b, adf, source_reference_type="FILE", destination_reference_type="Directory")
    assert (step.source_reference_type, step.destination_reference_type) == ("file", "directory")


def test_spec_output_is_the_destination(workspace, adf, stores, tmp_path):
    src, dst = stores
    copy = DataTransferStep("copy", DataReference(src, "raw", "in/files"), DataReference(dst, "out", "copies/x"),
                            adf)
    out = copy.get_output()
    assert isinstance(out, PipelineData) and out.name == "_data_transfer_output"
    (tmp_path / "train.py").write_text("print('x')\n")
    train = PythonScriptStep("train.py", name="train", inputs=[out], source_directory=str(tmp_path))
    spec = _spec(workspace, train)  # the copy is pulled in by the consumer, as v1 resolves the closure
    steps = {s["name"]: s for s in spec["steps"]}
    t = steps["copy"]
    assert t["kind"] == "DataTransferStep"
    assert t["compute"]["type"] == "datafactory" and t["compute"]["queue"] == "adf"
    assert t["outputs"][0]["datastore"] == "dst_files" and t["outputs"][0]["destination_path"] == "copies/x"
    assert t["transfer"]["destination"] == {"datastore": "dst_files", "path": "copies/x"}
    assert t["inputs"][0]["kind"] == "data_reference" and t["inputs"][0]["path"] == "in/files"
    assert steps["train"]["inputs"][0]["source"]["step"] == "copy"


def test_compute_must_be_a_data_factory(workspace, stores):
    src, dst = stores
    aml = ComputeTarget.create(workspace, "cpu", AmlCompute.provisioning_configuration())
    a, b = DataReference(src, "a", "in"), DataReference(dst, "b", "out")
    with pytest.raises(PipelineValidationError, match="'copy'.*compute_target.*DataFactoryCompute"):
        DataTransferStep("copy", a, b, aml)
    by_name = DataTransferStep("copy", a, b, "nowhere")
    with pytest.raises(PipelineValidationError, match="'copy'.*compute_target.*'nowhere'"):
        _spec(workspace, by_name)
    with pytest.raises(PipelineValidationError, match="compute_target.*expected a DataFactoryCompute"):
        DataTransferStep("copy", a, b, 42)


def test_data_factory_cannot_run_other_steps(workspace, adf, tmp_path):
    (tmp_path / "s.py").write_text("")
    with pytest.raises(PipelineValidationError, match="DataTransferStep"):
        PythonScriptStep("s.py", name="s", compute_target=adf, source_directory=str(tmp_path))


def test_sql_references(workspace, adf, stores):
    _, dst = stores
    with pytest.raises(UserErrorException, match="exactly one of sql_table, sql_query, sql_stored_procedure"):
        SqlDataReference("pg", sql_table="t", sql_query="select 1")
    with pytest.raises(UserErrorException, match="not a SQL one"):
        SqlDataReference(dst, sql_table="t")
    proc = SqlDataReference("pg", sql_stored_procedure="report", sql_stored_procedure_params=[
        StoredProcedureParameter("year", 2020, StoredProcedureParameterType.Int)])
    step = DataTransferStep("export", proc, DataReference(dst, "o", "exports/report.parquet"), adf)
    t = _spec(workspace, step)["steps"][0]
    assert t["inputs"] == []
    assert t["transfer"]["source_sql"]["sql"] == {
        "procedure": "report", "params": [{"name": "year", "value": "2020", "type": "Int"}]}
    with pytest.raises(PipelineValidationError, match="SQL destination must name a table"):
        DataTransferStep("load", DataReference(dst, "o", "x"), SqlDataReference("pg", sql_query="select 1"), adf)
    with pytest.raises(PipelineValidationError, match="SQL source needs a file destination"):
        DataTransferStep("s2s", SqlDataReference("pg", sql_table="a"), SqlDataReference("pg", sql_table="b"), adf)
    with pytest.raises(PipelineValidationError, match="sql_write_mode"):
        DataTransferStep("load", DataReference(dst, "o", "x"), SqlDataReference("pg", sql_table="t"), adf,
                         sql_write_mode="upsert")


def test_datapath_parameters_at_both_ends(workspace, adf, stores):
    src, dst = stores
    source = (PipelineParameter("source_path", default_value=DataPath(src, "in")), DataPathComputeBinding())
    dest = (PipelineParameter("dest_path", default_value=DataPath(dst, "out")), DataPathComputeBinding())
    t = _spec(workspace, DataTransferStep("copy", source, dest, adf))["steps"][0]
    assert sorted(t["parameters"]) == ["dest_path", "source_path"]
    assert t["transfer"]["destination"] == {"parameter": "dest_path"}
    with pytest.raises(PipelineValidationError, match="'dest_path' must default to a DataPath"):
        DataTransferStep("copy", source, (PipelineParameter("dest_path", default_value="x"),
                                          DataPathComputeBinding()), adf)


def test_destination_path_cannot_leave_its_datastore(workspace, adf, stores):
    src, dst = stores
    step = DataTransferStep("copy", DataReference(src, "a", "in"), DataReference(dst, "b", "../../etc"), adf)
    with pytest.raises(UserErrorException, match="destination_path|transfer"):
        _spec(workspace, step)
