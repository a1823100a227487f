"""The Airflow plugin of airflow-mlpipe (registered through the ``airflow.plugins`` entry point)."""
