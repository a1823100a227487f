"""Environment, CondaDependencies and curated names as in v1, and what an environment spec plans to install."""

from __future__ import annotations

import importlib.metadata as md
import sys

import pytest

from airflow_mlpipe import CondaDependencies, Environment, RunConfiguration
from airflow_mlpipe.contract.curated_environments import CURATED, conda_to_pip
from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.runtime import environments as envs


def test_default_runconfig_spec_is_unchanged_and_uses_the_worker_interpreter():
    spec = RunConfiguration().to_spec()["environment"]
    assert spec["python"]["conda"] == {"pip": [], "conda": [], "channels": [], "python": None}
    assert envs.plan_environment(spec) is None


def test_user_managed_dependencies_build_nothing():
    env = Environment("mine")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["tabulate"])
    env.python.user_managed_dependencies = True
    assert envs.plan_environment(env.to_spec()) is None


def test_azureml_packages_are_skipped_and_conda_names_mapped():
    deps = CondaDependencies.create(pip_packages=["azureml-sdk[automl,explain]", "azureml-dataprep[fuse,pandas]",
                                                  "tabulate==0.9.0"],
                                    conda_packages=["py-xgboost", "pytorch=2.1", "mkl", "python=3.11"])
    env = Environment("mapped")
    env.python.conda_dependencies = deps
    plan = envs.plan_environment(env.to_spec())
    assert set(plan.skipped) == {"azureml-sdk[automl,explain]", "azureml-dataprep[fuse,pandas]"}
    assert {"tabulate==0.9.0", "xgboost", "torch==2.1.*"} <= set(plan.requirements)
    assert not any(r.startswith(("azureml", "mkl", "python")) for r in plan.requirements)
    assert f"xgboost=={md.version('xgboost')}" in plan.constraints  # unpinned: the worker's version
    assert f"pandas=={md.version('pandas')}" in plan.constraints  # the step runtime constrains the user's pins
    assert not any(c.startswith("tabulate==") for c in plan.constraints)  # a user pin is left to the user


@pytest.mark.parametrize("spec,expected", [("scikit-learn", "scikit-learn"), ("py-xgboost=1.7", "xgboost==1.7.*"),
                                           ("conda-forge::pytorch>=2", "torch>=2"), ("numpy 1.26.4 py311", "numpy==1.26.4"),
                                           ("pip", None), ("python=3.11", None)])
def test_conda_to_pip(spec, expected):
    assert conda_to_pip(spec) == expected


def test_store_driver_joins_the_runtime_packages():
    spec = {"name": "pg", "python": {"conda": {"pip": ["tabulate"]}}}
    plan = envs.plan_environment(spec, "postgresql+psycopg://postgres@127.0.0.1/test")
    assert "psycopg" in plan.requirements and "psycopg-binary" in plan.requirements
    assert envs.plan_environment(spec, "sqlite:///x.db").content_hash != plan.content_hash


def test_worker_python_version_is_the_workers_interpreter():
    version = ".".join(map(str, sys.version_info[:2]))
    plan = envs.plan_environment({"name": "v", "python": {"conda": {"python": version}}})
    assert plan.python == sys.executable


def test_curated_environments_get_and_list(workspace):
    tutorial = Environment.get(workspace, "AzureML-Tutorial")
    assert tutorial.name == "AzureML-Tutorial"
    assert "scikit-learn" in tutorial.python.conda_dependencies.pip_packages
    assert set(CURATED) <= set(Environment.list(workspace))
    for name, entry in CURATED.items():
        assert entry["description"], name
    with pytest.raises(UserErrorException, match="'AzureML-Nope' is neither registered.*AzureML-Tutorial"):
        Environment.get(workspace, "AzureML-Nope")


def test_register_versions_and_get(workspace):
    env = Environment("team-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["tabulate==0.9.0"], python_version="3.11")
    env.environment_variables = {"A": "1"}
    assert env.register(workspace).version == "1"
    assert env.register(workspace).version == "1"  # unchanged: same version
    env.python.conda_dependencies.add_pip_package("rich")
    assert env.register(workspace).version == "2"
    latest = Environment.get(workspace, "team-env")
    assert latest.version == "2" and "rich" in latest.python.conda_dependencies.pip_packages
    assert latest.python.conda_dependencies.get_python_version() == "3.11"
    assert latest.environment_variables == {"A": "1"}
    first = Environment.get(workspace, "team-env", version="1")
    assert "rich" not in first.python.conda_dependencies.pip_packages
    assert Environment.list(workspace)["team-env"].version == "2"
    with pytest.raises(UserErrorException, match="no version '7'"):
        Environment.get(workspace, "team-env", version="7")
    with pytest.raises(UserErrorException, match="reserved"):
        Environment("AzureML-Mine").register(workspace)


def test_from_conda_specification_and_pip_requirements(tmp_path):
    conda = tmp_path / "env.yml"
    conda.write_text("name: train\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - py-xgboost\n"
                     "  - pip:\n    - tabulate==0.9.0\n    - azureml-defaults\n")
    env = Environment.from_conda_specification("train", str(conda))
    deps = env.python.conda_dependencies
    assert (deps.conda_packages, deps.pip_packages) == (["py-xgboost"], ["tabulate==0.9.0", "azureml-defaults"])
    assert deps.python_version == "3.11" and deps.conda_channels == ["conda-forge"]
    plan = envs.plan_environment(env.to_spec())
    assert {"xgboost", "tabulate==0.9.0"} <= set(plan.requirements) and plan.skipped == ("azureml-defaults",)

    reqs = tmp_path / "requirements.txt"
    reqs.write_text("# pinned\ntabulate==0.9.0  # for tables\n\nrich>=13\n")
    assert Environment.from_pip_requirements("r", str(reqs)).python.conda_dependencies.pip_packages == [
        "tabulate==0.9.0", "rich>=13"]


def test_bad_conda_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("dependencies:\n  - [not, a, spec]\n")
    with pytest.raises(ValueError, match="bad.yml.*neither a package spec"):
        Environment.from_conda_specification("bad", str(bad))


def test_gc_age_config():
    assert envs.max_age_days({"environment_max_age_days": "3"}) == 3.0
    with pytest.raises(envs.EnvironmentBuildError, match="environment_max_age_days"):
        envs.max_age_days({"environment_max_age_days": "soon"})
