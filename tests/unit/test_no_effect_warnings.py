"""No silent differences (issue 8, item 8): each v1 argument accepted without effect warns exactly once per
process, naming the argument and what happens instead; an upload-mode DataReference input is refused."""

from __future__ import annotations

import warnings

import pytest

from airflow_mlpipe import (
    AmlCompute,
    DataReference,
    Datastore,
    OutputFileDatasetConfig,
    PipelineData,
    PipelineValidationError,
    PythonScriptStep,
)
from airflow_mlpipe.sdk.data_reference import DataPathComputeBinding
from airflow_mlpipe.sdk.dataset_consumption import DatasetConsumptionConfig
from airflow_mlpipe.sdk.no_effect import NoEffectWarning, reset_no_effect_warnings


@pytest.fixture(autouse=True)
def _fresh_registry():
    reset_no_effect_warnings()
    yield
    reset_no_effect_warnings()


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.py").write_text("print('hi')\n")
    return str(folder)


def _store(ws):
    return Datastore(ws, "workspaceblobstore")


def _dataset(ws):
    from airflow_mlpipe import Dataset

    store = _store(ws)
    path = ws.home.parent / "d.csv"
    path.write_text("a,b\n1,2\n")
    store.upload_files([str(path)], target_path="in", overwrite=True, show_progress=False)
    return Dataset.File.from_files([(store, "in/d.csv")])


#: (argument named in the warning, a call passing it) — each called twice: one warning in all
CASES = {
    "PipelineData output_path_on_compute": ("output_path_on_compute",
                                            lambda ws: PipelineData("p", output_path_on_compute="/out")),
    "PipelineData output_overwrite": ("output_overwrite", lambda ws: PipelineData("p", output_overwrite=True)),
    "PipelineData is_directory": ("is_directory", lambda ws: PipelineData("p", is_directory=True)),
    "PipelineData data_type": ("data_type", lambda ws: PipelineData("p", data_type="AnyDirectory")),
    "PipelineData.as_download path_on_compute": (
        "path_on_compute", lambda ws: PipelineData("p").as_download(path_on_compute="/in")),
    "PipelineData.as_download overwrite": ("overwrite", lambda ws: PipelineData("p").as_download(overwrite=True)),
    "as_dataset().as_mount path_on_compute": (
        "path_on_compute", lambda ws: PipelineData("p").as_dataset().as_mount(path_on_compute="/in")),
    "parse_delimited_files set_column_types": (
        "set_column_types",
        lambda ws: PipelineData("p").as_dataset().parse_delimited_files(set_column_types={"a": "int"})),
    "parse_parquet_files partition_format": (
        "partition_format",
        lambda ws: PipelineData("p").as_dataset().parse_parquet_files(partition_format="/{x}/")),
    "OutputFileDatasetConfig.as_upload overwrite": (
        "overwrite",
        lambda ws: OutputFileDatasetConfig("o", destination=(_store(ws), "fixed/out")).as_upload(overwrite=False)),
    "OutputFileDatasetConfig.as_upload source_globs": (
        "source_globs", lambda ws: OutputFileDatasetConfig("o").as_upload(source_globs=["*.csv"])),
    "DataReference path_on_compute": (
        "path_on_compute", lambda ws: DataReference(_store(ws), "r", "in", path_on_compute="/data")),
    "DataReference.as_download overwrite": (
        "overwrite", lambda ws: DataReference(_store(ws), "r", "in").as_download(overwrite=True)),
    "Datastore.as_download path_on_compute": (
        "path_on_compute", lambda ws: _store(ws).as_download(path_on_compute="/data")),
    "DataPathComputeBinding path_on_compute": (
        "path_on_compute", lambda ws: DataPathComputeBinding(mode="download", path_on_compute="/data")),
    "DatasetConsumptionConfig path_on_compute": (
        "path_on_compute", lambda ws: DatasetConsumptionConfig("x", _dataset(ws), "download", "/data")),
    "FileDataset.as_download path_on_compute": (
        "path_on_compute", lambda ws: _dataset(ws).as_download(path_on_compute="/data")),
    "AmlCompute.provisioning_configuration vm_size": (
        "vm_size", lambda ws: AmlCompute.provisioning_configuration(vm_size="STANDARD_NC6", max_nodes=4)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_effect_argument_warns_once_with_its_name(workspace, case):
    argument, call = CASES[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call(workspace)
        call(workspace)
    ours = [w for w in caught if issubclass(w.category, NoEffectWarning) and f"argument {argument!r}" in
            str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    message = str(ours[0].message)
    assert "has no effect in airflow-mlpipe; " in message and len(message.split("; ", 1)[1]) > 20
    assert ours[0].filename == __file__  # points at the user's line, not at airflow_mlpipe internals


def test_hash_paths_warns_once_and_is_filterable(src):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PythonScriptStep("a.py", name="s1", source_directory=src, hash_paths=["a.py"])
        PythonScriptStep("a.py", name="s2", source_directory=src, hash_paths=["a.py"])
    ours = [w for w in caught if issubclass(w.category, NoEffectWarning)]
    assert len(ours) == 1 and "'hash_paths'" in str(ours[0].message)
    assert issubclass(NoEffectWarning, UserWarning)


def test_defaults_do_not_warn(workspace):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PipelineData("p").as_download()
        DataReference(_store(workspace), "r", "in").as_download()
        OutputFileDatasetConfig("o", destination=(_store(workspace), "out/{run-id}")).as_upload()
        AmlCompute.provisioning_configuration()
    assert not [w for w in caught if issubclass(w.category, NoEffectWarning)]


def test_upload_mode_data_reference_input_is_refused(workspace, src):
    ref = DataReference(_store(workspace), "results", "results").as_upload()
    with pytest.raises(PipelineValidationError, match="Step 's', argument 'inputs'.*upload mode"):
        PythonScriptStep("a.py", name="s", source_directory=src, inputs=[ref])
