"""``python -m airflow_mlpipe.emulators.databricks``: see :mod:`airflow_mlpipe.emulators.databricks.cli`."""

from __future__ import annotations

import sys

from airflow_mlpipe.emulators.databricks.cli import main

if __name__ == "__main__":
    sys.exit(main())
