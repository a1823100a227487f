"""Airflow hooks of remote step kinds: the external I/O (uploads, content hashes) done from a worker."""
