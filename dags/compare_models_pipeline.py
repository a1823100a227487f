"""The compare-models pipeline of the Azure ML docs: train, extract, compare, with a PipelineParameter.

Ported from the seed by changing only the imports; the scheduler picks it up as the DAG ``compare_models``.
"""

from pathlib import Path

from airflow_mlpipe import (
    Dataset,
    Datastore,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)

HERE = Path(__file__).resolve().parent
project_folder = str(HERE / "compare_models")

ws = Workspace.from_config()
def_blob_store = Datastore(ws, "workspaceblobstore")
def_blob_store.upload_files([str(HERE / "data" / "iris.csv")], target_path="train-dataset", overwrite=True,
                            show_progress=False)
my_dataset = Dataset.File.from_files([(def_blob_store, "train-dataset/iris.csv")])
ds_input = my_dataset.as_named_input("input1")

output_data1 = PipelineData("output_data1", datastore=def_blob_store, output_name="output_data1")
comp_data1 = PipelineData("comp_data1", datastore=def_blob_store)
comp_data2 = PipelineData("comp_data2", datastore=def_blob_store)
out_data3 = PipelineData("out_data3", datastore=def_blob_store, pipeline_output_name="comparison")
pipeline_param = PipelineParameter(name="pipeline_arg", default_value=10)

trainStep = PythonScriptStep(
    script_name="train.py",
    arguments=["--input", ds_input.as_download(), "--output", output_data1],
    inputs=[ds_input],
    outputs=[output_data1],
    source_directory=project_folder,
    allow_reuse=True,
)
extractStep = PythonScriptStep(
    script_name="extract.py",
    arguments=["--input", output_data1, "--comp_data1", comp_data1, "--comp_data2", comp_data2],
    inputs=[output_data1],
    outputs=[comp_data1, comp_data2],
    source_directory=project_folder,
)
compareStep = PythonScriptStep(
    script_name="compare.py",
    arguments=["--comp_data1", comp_data1, "--comp_data2", comp_data2, "--output_data", out_data3,
               "--param1", pipeline_param],
    inputs=[comp_data1, comp_data2],
    outputs=[out_data3],
    source_directory=project_folder,
)

compareModels = [trainStep, extractStep, compareStep]
pipeline1 = Pipeline(workspace=ws, steps=[compareModels])
pipeline = pipeline1
dag = pipeline1.to_dag("compare_models")
