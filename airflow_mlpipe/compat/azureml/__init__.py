"""``azureml`` compatibility package: lets Azure ML SDK v1 step scripts run unchanged inside a step.

This directory's parent (``airflow_mlpipe/compat``) is put on ``PYTHONPATH`` of a step's process only, by the
step operator; it is never installed as a top-level package, so it cannot clash with a real Azure ML SDK in
the same environment. ``from azureml.core import Run`` then resolves to ``airflow_mlpipe.sdk.run.Run``.

Every module here is a thin, lazy view: a name is looked up in the top-level ``airflow_mlpipe`` package the
first time it is used (see :mod:`azureml._reexport`), so ``from azureml.core import Run`` stays cheap and a
v1 name that airflow-mlpipe does not provide fails with an ImportError saying so.
"""
