"""Airflow triggers of remote step kinds: the deferrable waits, run by the triggerer."""
