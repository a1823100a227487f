"""The bottom layer: what every other layer agrees on (the pipeline spec, its parameter types and coercion,
the ``dag_run.conf`` keys, the run-context and metrics file formats, path checks, the v1 exception names).

It imports nothing from the rest of the package and never loads Airflow.
"""
