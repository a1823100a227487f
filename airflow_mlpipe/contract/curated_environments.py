"""The package side of environments: curated names, conda-to-PyPI names, and reading a conda YAML file.

Curated environments are the v1 names ported pipelines ask for (``Environment.get(ws, "AzureML-Tutorial")``).
Each maps to a small documented package set: the v1 environment's data-science packages, without its
``azureml-*`` packages (airflow-mlpipe's compatibility layer provides ``azureml.*`` inside every step) and
without packages a local step has no use for (``azureml-defaults``' inference server, telemetry, widgets).
Unpinned names resolve to the version the worker has (see :mod:`airflow_mlpipe.runtime.environments`), so a
curated environment built on a worker installs from uv's cache in seconds.
"""

from __future__ import annotations

import re
from typing import Any

#: curated name -> (description, pip requirements, conda packages, Python version or None for the worker's)
CURATED: dict[str, dict[str, Any]] = {
    "AzureML-Minimal": {
        "description": "v1 'AzureML-Minimal' (azureml-core, azureml-defaults): nothing beyond the step runtime "
                       "(pandas, numpy, pyarrow, fsspec, SQLAlchemy, requests, tqdm, blake3).",
        "pip": ["azureml-core", "azureml-defaults"],
        "conda": [],
        "python": None,
    },
    "AzureML-Tutorial": {
        "description": "v1 'AzureML-Tutorial' (the tutorials' environment): its data-science packages pandas, "
                       "numpy, scikit-learn, scipy, joblib and tqdm at the worker's versions; its azureml-* "
                       "packages come from the compatibility layer; matplotlib, mlflow and sklearn-pandas are "
                       "left out (no tutorial step script of the ported walkthroughs imports them).",
        "pip": ["azureml-core", "azureml-defaults", "azureml-pipeline-core", "azureml-pipeline-steps",
                "azureml-train-automl-client", "azureml-widgets", "scikit-learn", "scipy", "joblib"],
        "conda": ["pandas", "numpy", "tqdm"],
        "python": None,
    },
    "AzureML-sklearn-1.5": {
        "description": "v1 'AzureML-sklearn-1.5' (scikit-learn 1.5 training): scikit-learn 1.5.x, scipy, "
                       "joblib; azureml-core and azureml-defaults come from the compatibility layer.",
        "pip": ["azureml-core", "azureml-defaults", "scikit-learn~=1.5.1", "scipy", "joblib"],
        "conda": [],
        "python": None,
    },
    "AzureML-lightgbm-3.3": {
        "description": "v1 'AzureML-lightgbm-3.3' (LightGBM training): lightgbm 3.3.x, pandas, numpy, scipy.",
        "pip": ["azureml-core", "azureml-defaults", "lightgbm~=3.3.5", "scipy"],
        "conda": ["pandas", "numpy"],
        "python": None,
    },
}

#: conda package names whose PyPI distribution has another name (the rest are the same on both)
CONDA_TO_PYPI: dict[str, str] = {
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "xgboost-cpu": "xgboost",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "torchvision-cpu": "torchvision",
    "tensorflow-cpu": "tensorflow",
    "lightgbm-cpu": "lightgbm",
    "py-lightgbm": "lightgbm",
    "scikit-learn-intelex": "scikit-learn-intelex",
    "pyyaml": "PyYAML",
    "python-dateutil": "python-dateutil",
    "pytables": "tables",
    "msgpack-python": "msgpack",
    "matplotlib-base": "matplotlib",
    "psycopg2": "psycopg2-binary",
    "pyarrow-core": "pyarrow",
    "libgfortran": "",  # a native library conda ships: nothing to install from PyPI
    "mkl": "",
    "openblas": "",
    "cudatoolkit": "",
    "pip": "",
    "setuptools": "",
    "wheel": "",
}

#: a conda spec ``name[=version[=build]]`` or ``name>=1``; a channel prefix ``conda-forge::`` is dropped
_CONDA_SPEC = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9_.-]+)\s*(.*)$")


def conda_to_pip(spec: str) -> str | None:
    """The PyPI requirement for a conda package spec (``py-xgboost=1.7`` -> ``xgboost==1.7.*``), or None for a
    conda-only package (native libraries, pip itself) or Python, which the environment's interpreter decides."""
    match = _CONDA_SPEC.match(spec.strip())
    if match is None:
        raise ValueError(f"conda package {spec!r}: expected 'name', 'name=version' or 'name>=version'")
    name, rest = match.group(1), match.group(2).strip()
    if name.lower() == "python":
        return None
    pypi = CONDA_TO_PYPI.get(name.lower(), name)
    if not pypi:
        return None
    if not rest:
        return pypi
    if rest[0] in "<>=!~":
        if rest.startswith("=") and not rest.startswith("=="):  # conda's `=1.7` means 1.7.*
            version = rest[1:].split("=")[0]
            return f"{pypi}=={version}.*" if version.count(".") < 2 else f"{pypi}=={version}"
        return f"{pypi}{rest}"
    return f"{pypi}=={rest.split()[0]}"  # conda's `name 1.7.3 build` form


def conda_python_version(spec: str) -> str | None:
    """``python=3.11`` / ``python==3.11.4`` / ``python>=3.11`` -> the version it names, else None."""
    match = _CONDA_SPEC.match(spec.strip())
    if match is None or match.group(1).lower() != "python":
        return None
    version = match.group(2).lstrip("<>=!~ ").split(",")[0].strip()
    return version.rstrip(".*") or None


def parse_conda_yaml(text: str, where: str) -> dict[str, Any]:
    """``{"conda": [...], "pip": [...], "channels": [...], "python": version|None}`` from a conda environment
    file (``name``, ``channels``, ``dependencies`` with an optional ``pip:`` list)."""
    import yaml

    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not a valid conda environment YAML file: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: a conda environment file is a mapping with 'dependencies'")
    conda: list[str] = []
    pip: list[str] = []
    python: str | None = None
    for dep in doc.get("dependencies") or []:
        if isinstance(dep, dict) and "pip" in dep:
            pip.extend(str(p) for p in dep["pip"] or [])
        elif isinstance(dep, str):
            version = conda_python_version(dep)
            if version is not None or dep.strip().lower() == "python":
                python = version or python
            else:
                conda.append(dep)
        else:
            raise ValueError(f"{where}: dependency {dep!r} is neither a package spec nor a 'pip:' list")
    return {"conda": conda, "pip": pip, "channels": [str(c) for c in doc.get("channels") or []], "python": python}
