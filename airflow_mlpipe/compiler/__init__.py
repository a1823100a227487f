"""PipelineSpec → Airflow DAG (deterministic: the same spec gives the same DAG)."""
