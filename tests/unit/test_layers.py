"""The layers of ARCHITECTURE.md hold: lower layers import nothing from higher ones (import-linter), and the
authoring SDK plans a pipeline without loading Airflow (seconds of import time a data scientist never needs)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "broken" in done.stdout and "0 broken" in done.stdout


def test_planning_a_pipeline_leaves_airflow_unloaded(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('train')\n")
    script = textwrap.dedent("""
        import sys
        from airflow_mlpipe import Pipeline, PipelineData, PipelineParameter, PythonScriptStep, Workspace

        ws = Workspace.from_config()
        raw = PipelineData("raw")
        n = PipelineParameter("n", default_value=3)
        prep = PythonScriptStep("train.py", name="prep", arguments=["--out", raw, "--n", n], outputs=[raw],
                                source_directory="src")
        train = PythonScriptStep("train.py", name="train", arguments=["--in", raw], inputs=[raw],
                                 source_directory="src")
        decisions = Pipeline(ws, steps=[prep, train]).plan({"n": 4})
        assert [d.action for d in decisions] == ["run", "pending"], decisions
        loaded = sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow."))
        print("LOADED", loaded)
        sys.exit(1 if loaded else 0)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLPIPE"))}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
