"""Airflow operators, one per step kind; each is a thin shell over a runtime function."""
