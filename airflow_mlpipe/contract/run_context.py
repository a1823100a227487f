"""The contract between a step operator and the step's script process.

The operator starts the script with these environment variables (plus the v1 ones listed in
reference/azureml-v1-api.md section 10) and reads back what the script wrote. ``Run.get_context()`` in the
script is built only from this, so the script never needs the database or Airflow.

``MLPIPE_RUN_CONTEXT`` names a JSON file::

    {
      "run_id": "<step run id>", "pipeline_run_id": "...", "step_name": "...", "experiment": "...",
      "workspace": {"name": ..., "home": ..., "config_path"?: ...},
      "input_datasets": {"<name>": {"mode": "direct", "dataset": <dataset definition>}
                         | {"mode": "download"|"mount", "path": "/local/path"}},
      "output_datasets": {"<name>": "/local/output/dir"},
      "parameters": {"<pipeline parameter>": <value>}
    }

``MLPIPE_METRICS_FILE`` names a JSON-lines file the script appends metrics to, one record per call::

    {"name": ..., "kind": "scalar"|"list"|"row"|"table"|"image", "value": ..., "step": null, "description": ""}

The operator loads those records into the store when the script ends, success or failure.
"""

from __future__ import annotations

ENV_RUN_CONTEXT = "MLPIPE_RUN_CONTEXT"
ENV_METRICS_FILE = "MLPIPE_METRICS_FILE"
ENV_PIPELINE_RUN_ID = "MLPIPE_PIPELINE_RUN_ID"
ENV_STEP_NAME = "MLPIPE_STEP_NAME"

# v1 names a script may read directly
ENV_RUN_ID = "AZUREML_RUN_ID"
ENV_EXPERIMENT = "AZUREML_ARM_PROJECT_NAME"
ENV_WORKSPACE_NAME = "AZUREML_ARM_WORKSPACE_NAME"
ENV_SUBSCRIPTION = "AZUREML_ARM_SUBSCRIPTION"
ENV_RESOURCE_GROUP = "AZUREML_ARM_RESOURCEGROUP"
ENV_SERVICE_ENDPOINT = "AZUREML_SERVICE_ENDPOINT"
ENV_RUN_TOKEN = "AZUREML_RUN_TOKEN"
ENV_RUN_TOKEN_EXPIRY = "AZUREML_RUN_TOKEN_EXPIRY"
ENV_DATASET_VARS = "AZUREML_DATASET_ENVIRONMENT_VARS"
ENV_DATASET_FILE_OUTPUTS = "AZUREML_DATASET_FILE_OUTPUTS"
DATAREFERENCE_PREFIX = "AZUREML_DATAREFERENCE_"
PARAMETER_PREFIX = "AML_PARAMETER_"
