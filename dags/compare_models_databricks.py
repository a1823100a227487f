"""The compare-models pipeline of the Azure ML docs with its DatabricksStep: extract, aggregate on Databricks,
train, compare, with a PipelineParameter.

Ported from the seed by changing only the imports. The Databricks target is attached the v1 way; with no
Databricks host configured (workspace config ``databricks_hosts`` or ``$MLPIPE_DATABRICKS_HOST``) it is the
local Databricks emulator, started by the attach. The notebook ``compare_models_databricks/aggregate.py`` is put
into the target's workspace at ``notebook_path`` (a real workspace: import it there with the Databricks CLI).
The scheduler picks this file up as the DAG ``compare_models_databricks``.
"""

import os
from pathlib import Path

from airflow_mlpipe import (
    ComputeTarget,
    ComputeTargetException,
    DatabricksCompute,
    DatabricksStep,
    Dataset,
    Datastore,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)

HERE = Path(__file__).resolve().parent
project_folder = str(HERE / "compare_models_databricks")
notebook_path = "/Shared/compare_models/aggregate"

ws = Workspace.from_config()
def_blob_store = Datastore(ws, "workspaceblobstore")
def_blob_store.upload_files([str(HERE / "data" / "iris.csv")], target_path="train-dataset", overwrite=True,
                            show_progress=False)
my_dataset = Dataset.File.from_files([(def_blob_store, "train-dataset/iris.csv")])
ds_input = my_dataset.as_named_input("input1")

databricks_compute_name = os.environ.get(
    "AML_DATABRICKS_COMPUTE_NAME", "<databricks_compute_name>")
databricks_workspace_name = os.environ.get(
    "AML_DATABRICKS_WORKSPACE", "<databricks_workspace_name>")
databricks_resource_group = os.environ.get(
    "AML_DATABRICKS_RESOURCE_GROUP", "<databricks_resource_group>")
databricks_access_token = os.environ.get(
    "AML_DATABRICKS_ACCESS_TOKEN", "<databricks_access_token>")

try:
    databricks_compute = ComputeTarget(
        workspace=ws, name=databricks_compute_name)
    print('Compute target already exists')
except ComputeTargetException:
    print('compute not found')
    print('databricks_compute_name {}'.format(databricks_compute_name))  # noqa: UP032 (the seed's code)
    print('databricks_workspace_name {}'.format(databricks_workspace_name))  # noqa: UP032 (the seed's code)
    # (the seed also prints databricks_access_token here: left out, a token never goes to a log)

    # Create attach config
    attach_config = DatabricksCompute.attach_configuration(resource_group=databricks_resource_group,
                                                           workspace_name=databricks_workspace_name,
                                                           access_token=databricks_access_token)
    databricks_compute = ComputeTarget.attach(
        ws,
        databricks_compute_name,
        attach_config
    )

    databricks_compute.wait_for_completion(True)

try:  # the local emulator's workspace; a real one gets the notebook from you (the message says how)
    databricks_compute.import_notebook(str(HERE / "compare_models_databricks" / "aggregate.py"), notebook_path)
except ComputeTargetException as exc:
    print(exc)

step_1_input = PipelineData("extracted", datastore=def_blob_store)
step_1_output = PipelineData("aggregated", datastore=def_blob_store)
comp_data1 = PipelineData("comp_data1", datastore=def_blob_store)
comp_data2 = PipelineData("comp_data2", datastore=def_blob_store)
out_data3 = PipelineData("out_data3", datastore=def_blob_store, pipeline_output_name="comparison")
pipeline_param = PipelineParameter(name="pipeline_arg", default_value=10)

extractStep = PythonScriptStep(
    script_name="extract.py",
    arguments=["--input", ds_input.as_download(), "--output", step_1_input],
    inputs=[ds_input],
    outputs=[step_1_input],
    source_directory=project_folder,
    allow_reuse=True,
)
dbStep = DatabricksStep(
    name="databricksmodule",
    inputs=[step_1_input],
    outputs=[step_1_output],
    num_workers=1,
    notebook_path=notebook_path,
    notebook_params={'myparam': 'testparam'},
    run_name='demo run name',
    compute_target=databricks_compute,
    allow_reuse=False
)
trainStep = PythonScriptStep(
    script_name="train.py",
    arguments=["--extracted", step_1_input, "--aggregated", step_1_output, "--comp_data1", comp_data1,
               "--comp_data2", comp_data2],
    inputs=[step_1_input, step_1_output],
    outputs=[comp_data1, comp_data2],
    source_directory=project_folder,
)
compareStep = PythonScriptStep(
    script_name="compare.py",
    arguments=["--comp_data1", comp_data1, "--comp_data2", comp_data2, "--output_data", out_data3,
               "--param1", pipeline_param],
    inputs=[comp_data1, comp_data2],
    outputs=[out_data3],
    source_directory=str(HERE / "compare_models"),  # the same compare.py as dags/compare_models_pipeline.py
)

compareModels = [extractStep, dbStep, trainStep, compareStep]
pipeline1 = Pipeline(workspace=ws, steps=[compareModels])
pipeline = pipeline1
dag = pipeline1.to_dag("compare_models_databricks")
