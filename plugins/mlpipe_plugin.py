from airflow_mlpipe.plugins.mlpipe_plugin import MlpipePlugin  # noqa: F401  (for plugins-folder deployments)
