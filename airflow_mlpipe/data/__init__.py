"""The data layer: datastores, datasets, file hashing and transfer — no v1 classes, no Airflow."""
