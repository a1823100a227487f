"""The v1-compatible authoring SDK (pure Python; importing it never configures or starts Airflow)."""
