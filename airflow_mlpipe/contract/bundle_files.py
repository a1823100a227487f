"""The file names of the workspace's submitted-pipelines DAG bundle (``<airflow home>/submitted``).

The clients write these files (:mod:`airflow_mlpipe.clients.bundle_stubs`) and the compiler's factories look for
them (a hand-copied factory steps aside once the bundle serves published pipelines), so the names live here, below
both.
"""

from __future__ import annotations

#: folder of the bundle, under the workspace's Airflow home
BUNDLE_DIRNAME = "submitted"
#: folder inside the bundle holding one spec file per submitted pipeline
SPECS_DIRNAME = "specs"
#: generated DAG file serving the submitted specs
SUBMITTED_STUB = "mlpipe_submitted_dags.py"
#: generated DAG file serving published pipelines, endpoint versions and schedules (read from the store)
PUBLISHED_STUB_NAME = "mlpipe_published_dags.py"
#: generated file whose one import error names every pipeline the two factories above could not build
ERRORS_STUB_NAME = "mlpipe_pipeline_errors.py"
