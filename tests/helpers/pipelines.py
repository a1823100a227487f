"""Small pipelines the unit tests publish, submit and compile."""

from __future__ import annotations

from pathlib import Path

from airflow_mlpipe import Pipeline, PipelineData, PipelineParameter, PythonScriptStep


def chain_pipeline(ws, root: Path, n_steps: int = 2, default: int = 10) -> Pipeline:
    """``s0 -> s1 -> ...`` passing PipelineData, with an int parameter ``pipeline_arg`` and a string ``label``."""
    src = root / "src"
    src.mkdir(exist_ok=True)
    (src / "step.py").write_text("print('hi')\n")
    arg = PipelineParameter("pipeline_arg", default_value=default)
    name = PipelineParameter("label", default_value="x")
    steps, prev = [], None
    for i in range(n_steps):
        out = PipelineData(f"out{i}")
        args = ["--out", out, "--arg", arg, "--label", name]
        inputs = []
        if prev is not None:
            args += ["--in", prev]
            inputs = [prev]
        steps.append(PythonScriptStep("step.py", name=f"s{i}", arguments=args, inputs=inputs, outputs=[out],
                                      source_directory=str(src)))
        prev = out
    return Pipeline(ws, steps)
