"""The Titanic pipeline of the Azure ML "Use automated ML in an Azure Machine Learning pipeline" walkthrough.

Ported by changing the imports (``from airflow_mlpipe import ...``). The other changes, each marked NOTE:

- the walkthrough downloads Titanic.csv / Titanic2.csv from the web; here the same two files ship in
  ``dags/titanic/data`` and are uploaded to the default datastore first;
- the experiment timeout is a module constant, ``EXPERIMENT_TIMEOUT_MINUTES`` (default 1 minute, override
  with the environment variable ``MLPIPE_TITANIC_TIMEOUT_MINUTES``) instead of 15 minutes, and iterations
  ``ITERATIONS`` (default 50, the walkthrough's own advice; ``MLPIPE_TITANIC_ITERATIONS``), so the whole pipeline
  runs in about a minute and a half on 2 cores;
- ``n_cross_validations=5`` is set explicitly (the walkthrough relied on AutoML's default validation).

``mlpipe run dags/titanic_pipeline.py`` submits it and waits; the scheduler picks this file up as the DAG
``titanic_pipeline``.
"""

import os
from pathlib import Path

from airflow_mlpipe import (
    AmlCompute,
    AutoMLConfig,
    AutoMLStep,
    ComputeTarget,
    Dataset,
    Environment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    RunConfiguration,
    TrainingOutput,
    Workspace,
)

HERE = Path(__file__).resolve().parent
EXPERIMENT_TIMEOUT_MINUTES = float(os.environ.get("MLPIPE_TITANIC_TIMEOUT_MINUTES", "1"))  # NOTE: seed: 0.25 h
ITERATIONS = int(os.environ.get("MLPIPE_TITANIC_ITERATIONS", "50"))  # NOTE: seed: 2 ("change to 50")

# ---------------------------------------------------------------- Retrieve initial dataset
ws = Workspace.from_config()
if not 'titanic_ds' in ws.datasets.keys() :  # noqa: E713 - as the walkthrough wrote it
    # NOTE: the walkthrough reads two web files; the same files are uploaded to the default datastore here
    web_paths = [str(HERE / "titanic" / "data" / "Titanic.csv"), str(HERE / "titanic" / "data" / "Titanic2.csv")]
    ws.get_default_datastore().upload_files(web_paths, target_path="titanic", overwrite=True, show_progress=False)
    web_paths = [(ws.get_default_datastore(), "titanic/Titanic.csv"),
                 (ws.get_default_datastore(), "titanic/Titanic2.csv")]
    titanic_ds = Dataset.Tabular.from_delimited_files(path=web_paths)

    titanic_ds.register(workspace = ws,
                                     name = 'titanic_ds',
                                     description = 'Titanic baseline data',
                                     create_new_version = True)

titanic_ds = Dataset.get_by_name(ws, 'titanic_ds')

# ---------------------------------------------------------------- Configure your storage and compute target
datastore = ws.get_default_datastore()

compute_name = 'cpu-cluster'
if not compute_name in ws.compute_targets :  # noqa: E713
    print('creating a new compute target...')
    provisioning_config = AmlCompute.provisioning_configuration(vm_size='STANDARD_D2_V2',
                                                                min_nodes=0,
                                                                max_nodes=1)
    compute_target = ComputeTarget.create(ws, compute_name, provisioning_config)

    compute_target.wait_for_completion(
        show_output=True, min_node_count=None, timeout_in_minutes=20)

compute_target = ws.compute_targets[compute_name]

# ---------------------------------------------------------------- Configure the training run
aml_run_config = RunConfiguration()
# Use just-specified compute target ("cpu-cluster")
aml_run_config.target = compute_target

USE_CURATED_ENV = True
if USE_CURATED_ENV :
    curated_environment = Environment.get(workspace=ws, name="AzureML-Tutorial")
    aml_run_config.environment = curated_environment

# ---------------------------------------------------------------- Write the data preparation pipeline step
titanic_train = PipelineData("titanic_train", datastore)
prepped_data_path = titanic_train.as_dataset()

dataprep_step = PythonScriptStep(
    name="dataprep",
    script_name="dataprep.py",
    source_directory=str(HERE / "titanic"),  # NOTE: the walkthrough relied on the current folder
    compute_target=compute_target,
    runconfig=aml_run_config,
    arguments=["--output_path", prepped_data_path],
    inputs=[titanic_ds.as_named_input("titanic_ds")],
    outputs=[prepped_data_path],
    allow_reuse=True
)

# ---------------------------------------------------------------- Train with AutoMLStep
prepped_data = prepped_data_path.parse_parquet_files(file_extension=None)

metrics_data = PipelineData(name='metrics_data',
                           datastore=datastore,
                           pipeline_output_name='metrics_output',
                           training_output=TrainingOutput(type='Metrics'))
model_data = PipelineData(name='best_model_data',
                           datastore=datastore,
                           pipeline_output_name='model_output',
                           training_output=TrainingOutput(type='Model'))

# Change iterations to a reasonable number (50) to get better accuracy
automl_settings = {
    "iteration_timeout_minutes" : 10,
    "iterations" : ITERATIONS,
    "experiment_timeout_minutes" : EXPERIMENT_TIMEOUT_MINUTES,  # NOTE: seed: "experiment_timeout_hours" : 0.25
    "primary_metric" : 'AUC_weighted',
    "n_cross_validations" : 5,  # NOTE: explicit
}

automl_config = AutoMLConfig(task = 'classification',
                             path = '.',
                             debug_log = 'automated_ml_errors.log',
                             compute_target = compute_target,
                             run_configuration = aml_run_config,
                             featurization = 'auto',
                             training_data = prepped_data,
                             label_column_name = 'Survived',
                             **automl_settings)

train_step = AutoMLStep(name='AutoML_Classification',
    automl_config=automl_config,
    outputs=[metrics_data,model_data],
    enable_default_model_output=False,
    enable_default_metrics_output=False,
    allow_reuse=True)

# ---------------------------------------------------------------- Register the model
# The model name with which to register the trained model in the workspace.
model_name = PipelineParameter("model_name", default_value="TitanicSurvivalInitial")

register_step = PythonScriptStep(script_name="register_model.py",
                                       name="register_model",
                                       source_directory=str(HERE / "titanic"),  # NOTE: as above
                                       allow_reuse=False,
                                       arguments=["--model_name", model_name, "--model_path", model_data],
                                       inputs=[model_data],
                                       compute_target=compute_target,
                                       runconfig=aml_run_config)

# ---------------------------------------------------------------- Create and run your automated ML pipeline
pipeline = Pipeline(ws, [dataprep_step, train_step, register_step],
                    description="Titanic: prepare data, AutoML (FLAML), register the best model")
dag = pipeline.to_dag("titanic_pipeline")
