"""The iris pipeline of the Azure ML docs, ported by changing only the imports.

Upload iris.csv, define a TabularDataset, a step that reads it through ``Run.get_context().input_datasets``
and writes a PipelineData, and a second step that consumes it. The scheduler picks this file up as the DAG
``iris_pipeline``; ``mlpipe run dags/iris_pipeline.py`` submits it and waits.
"""

from pathlib import Path

from airflow_mlpipe import Dataset, Datastore, Pipeline, PipelineData, PythonScriptStep, Workspace

HERE = Path(__file__).resolve().parent

ws = Workspace.from_config()
def_blob_store = Datastore(ws, "workspaceblobstore")
def_blob_store.upload_files([str(HERE / "data" / "iris.csv")], target_path="train-dataset", overwrite=True,
                            show_progress=False)

iris_tabular_dataset = Dataset.Tabular.from_delimited_files([(def_blob_store, "train-dataset/iris.csv")])

prepared = PipelineData("prepared", datastore=def_blob_store)
model = PipelineData("model", datastore=def_blob_store, pipeline_output_name="iris_model")

prepare_step = PythonScriptStep(
    name="prepare",
    script_name="prepare.py",
    arguments=["--output", prepared],
    inputs=[iris_tabular_dataset.as_named_input("iris_data")],
    outputs=[prepared],
    source_directory=str(HERE / "iris"),
)
train_step = PythonScriptStep(
    name="train",
    script_name="train.py",
    arguments=["--input", prepared, "--model", model],
    inputs=[prepared],
    outputs=[model],
    source_directory=str(HERE / "iris"),
)

pipeline = Pipeline(workspace=ws, steps=[train_step], description="Iris: prepare data, train, score")
dag = pipeline.to_dag("iris_pipeline")
