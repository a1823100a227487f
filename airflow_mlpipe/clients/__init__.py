"""Clients that talk to Airflow: the embedded local Airflow (processes on 127.0.0.1) and the REST API v2."""
