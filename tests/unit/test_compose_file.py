"""docker-compose.yaml: valid against the Compose Specification schema and consistent with this project.

No Docker engine is needed: the file is checked against the vendored Compose Specification JSON schema
(tests/fixtures/compose-spec.schema.json, see its SOURCE.md), by project-specific rules, and — when Debian's
``docker-compose`` (Compose v1.29, ``apt-get install -y docker-compose``) is installed — by
``docker-compose config``, which parses, interpolates and validates without an engine.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
SCHEMA = REPO / "tests" / "fixtures" / "compose-spec.schema.json"
AIRFLOW_SERVICES = {
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker",
}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set in the environment (the defaults a user gets)."""

    def repl(m: re.Match) -> str:
        op, arg = m.group(2), m.group(3) or ""
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise AssertionError(f"${{{m.group(1)}}} is required by docker-compose.yaml: {arg}")
        return ""

    return _VAR.sub(repl, value.replace("$$", "\0")).replace("\0", "$")


def _command(svc: dict) -> list[str]:
    cmd = svc.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _env(svc: dict) -> dict[str, str]:
    """Effective environment of a service: its env files, then ``environment`` (interpolated)."""
    env: dict[str, str] = {}
    files = svc.get("env_file") or []
    for name in [files] if isinstance(files, str) else files:
        for line in (REPO / name).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key.strip()] = value
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    env.update({k: _interpolate("" if v is None else str(v)) for k, v in raw.items()})
    return env


def _mounts(svc: dict) -> list[tuple[str, str, str]]:
    out = []
    for vol in svc.get("volumes") or []:
        if isinstance(vol, dict):
            out.append((vol.get("source", ""), vol["target"], "ro" if vol.get("read_only") else "rw"))
        else:
            parts = _interpolate(vol).split(":")
            out.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return out


# ---------------------------------------------------------------------------------------------- the schema
def test_vendored_schema_is_the_compose_spec():
    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    assert (SCHEMA.parent / "compose-spec.schema.SOURCE.md").is_file()


def _validator():
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"].startswith("http://json-schema.org/draft/2019-09/schema")
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_valid_against_compose_spec_schema(compose):
    errors = sorted(_validator().iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c["services"]["redis"]["healthcheck"].update(bogus=1),
        lambda c: c["services"]["airflow-worker"].update(depends_on={"redis": {"condition": "when_ready"}}),
        lambda c: c.update(volumes={"bad name!": {}}) or c["services"]["postgres"].update(ports=[{"x": 1}]),
    ],
)
def test_schema_rejects_broken_files(compose, mutate):
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert list(_validator().iter_errors(broken)), "the schema should reject this change"


def test_docker_compose_config_accepts_it(tmp_path):
    """Compose itself parses, interpolates and validates the file (no engine needed)."""
    exe = shutil.which("docker-compose")
    assert exe, ("Debian's docker-compose (Compose 1.29) validates the file without an engine and is required: "
                 "apt-get install -y docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"  # prove that no engine is involved
    proc = subprocess.run([exe, "-f", str(COMPOSE), "config"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)
    assert set(resolved["services"]) == {"postgres", "redis"} | AIRFLOW_SERVICES
    worker = resolved["services"]["airflow-worker"]
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert any(v.endswith(":/opt/airflow/dags:rw") and v.startswith(str(REPO / "dags")) for v in worker["volumes"])
    assert resolved["services"]["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080/tcp"]


# ---------------------------------------------------------------------------------------------- the stack
def test_services_and_dependencies(services):
    assert set(services) == {"postgres", "redis"} | AIRFLOW_SERVICES
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        deps = {d: {"condition": "service_started"} for d in deps} if isinstance(deps, list) else deps
        for dep, how in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep!r}"
            assert dep != name, f"{name} depends on itself"
            condition = how.get("condition")
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy: no healthcheck"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is a one-shot job: restart must be 'no'"
        if name in AIRFLOW_SERVICES - {"airflow-init"}:
            assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        if name in AIRFLOW_SERVICES:
            assert deps["postgres"]["condition"] == "service_healthy", name
            assert deps["redis"]["condition"] == "service_healthy", name
        if name != "airflow-init":
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_airflow3_command_lines(services):
    cmds = {name: _command(svc) for name, svc in services.items() if name in AIRFLOW_SERVICES}
    assert cmds["airflow-apiserver"][:2] == ["airflow", "api-server"]
    assert cmds["airflow-scheduler"][:2] == ["airflow", "scheduler"]
    assert cmds["airflow-dag-processor"][:2] == ["airflow", "dag-processor"]
    assert cmds["airflow-triggerer"][:2] == ["airflow", "triggerer"]
    worker = cmds["airflow-worker"]
    assert worker[:3] == ["airflow", "celery", "worker"]
    queues = worker[worker.index("-q") + 1].split(",")
    assert {"default", "cpu-cluster"} <= set(queues)
    assert "--skip-serve-logs" in worker
    init = " ".join(cmds["airflow-init"])
    assert "airflow db migrate" in init and "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in init
    everything = COMPOSE.read_text()
    for gone in ("airflow webserver", "\"webserver\"", "airflow db init", "airflow users create",
                 "celery_executor.app inspect ping -d \"celery@$${HOSTNAME}\" ||"):
        assert gone not in everything, f"Airflow 2 leftover in docker-compose.yaml: {gone}"


def test_airflow_settings_are_the_distributed_ones(services):
    envs = {name: _env(services[name]) for name in AIRFLOW_SERVICES}
    for name, env in envs.items():
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        conn = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert conn.scheme == "postgresql+psycopg2" and conn.hostname == "postgres" and conn.path == "/airflow"
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
        assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
        bundles = json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
        assert [b["kwargs"]["path"] for b in bundles][0] == env["AIRFLOW__CORE__DAGS_FOLDER"]
    # tokens signed by one component are verified by another: the same secrets everywhere
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        assert len({env[key] for env in envs.values()}) == 1, key
    # Airflow's own password is never the mlpipe store's: that one comes from PGPASSWORD
    assert {env["PGPASSWORD"] for env in envs.values()} == {_env(services["postgres"])["MLPIPE_DB_PASSWORD"]}


def test_mounts_and_files_exist(compose, services):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, svc in services.items():
        for source, target, _ in _mounts(svc):
            assert target.startswith("/"), (name, target)
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repo"
            else:
                assert source in declared, f"{name} uses undeclared volume {source!r}"
                used.add(source)
        files = svc.get("env_file") or []
        for env_file in [files] if isinstance(files, str) else files:
            assert (REPO / env_file).is_file(), f"{name}: env file {env_file} missing"
        build = svc.get("build")
        if build:
            context = REPO / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
    assert used == declared, f"declared but unused volumes: {declared - used}"
    for name in AIRFLOW_SERVICES:
        mounts = {target: (source, mode) for source, target, mode in _mounts(services[name])}
        dags = _env(services[name])["AIRFLOW__CORE__DAGS_FOLDER"]
        assert mounts[dags][0] == "./dags", f"{name}: {dags} is not the repo's ./dags"
        assert mounts["/shared"][0] == "mlpipe-shared", f"{name}: no shared datastore volume"
        config = _env(services[name])["MLPIPE_WORKSPACE_CONFIG"]
        assert mounts[config] == ("./deploy/mlpipe-config.json", "ro"), name
    assert services["postgres"]["volumes"]


def test_workspace_config_names_postgres_store_and_shared_datastore(services):
    config = json.loads((REPO / "deploy" / "mlpipe-config.json").read_text())
    store = urlsplit(config["store_url"])
    assert store.scheme == "postgresql+psycopg2" and store.hostname == "postgres"
    assert store.password is None, "no password in the workspace config (PGPASSWORD carries it)"
    assert config["home"].startswith("/shared/")
    for name, entry in config["datastores"].items():
        url = entry["url"] if isinstance(entry, dict) else entry
        assert url.startswith("file:///shared/"), (name, url)
    assert "workspaceblobstore" in config["datastores"]
    assert config["airflow"]["url"] == "http://airflow-apiserver:8080"
    assert "password" not in config["airflow"]
    # the init script creates exactly that database, and postgres runs it
    pg = services["postgres"]
    pg_env = _env(pg)
    assert pg_env["MLPIPE_DB"] == store.path.lstrip("/") and pg_env["MLPIPE_DB_USER"] == store.username
    inits = [t for s, t, _ in _mounts(pg) if t.startswith("/docker-entrypoint-initdb.d/")]
    assert inits and all(t.endswith(".sh") for t in inits)
    script = (REPO / "deploy" / "postgres" / "init-mlpipe-db.sh").read_text()
    assert "CREATE DATABASE" in script and "MLPIPE_DB_PASSWORD" in script
    # the healthcheck only turns healthy once the init script has created the store database
    assert f"-d {pg_env['MLPIPE_DB']}" in " ".join(pg["healthcheck"]["test"])


def test_only_the_api_server_is_published_on_loopback(services):
    for name, svc in services.items():
        if name == "airflow-apiserver":
            assert [_interpolate(p) for p in svc["ports"]] == ["127.0.0.1:8080:8080"]
        else:
            assert not svc.get("ports"), f"{name} publishes ports"


def test_dockerfile_installs_the_project_with_uv_from_the_lock(services):
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"uv sync --frozen\b.*--no-dev", dockerfile)
    for src in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for item in src.split():
            assert (REPO / item).exists(), f"COPY {item}: not in the repo"
    assert re.search(r"^USER 50000", dockerfile, re.M)
    assert all(services[n]["user"] == "50000:0" for n in AIRFLOW_SERVICES)
    ignore = (REPO / "deploy" / "Dockerfile.dockerignore").read_text()
    assert "**/.venv" in ignore


def test_shell_scripts_parse(services, tmp_path):
    """The init job's inline script and the postgres init script are valid bash."""
    bash = shutil.which("bash")
    assert bash, "bash is needed"
    init = _command(services["airflow-init"])
    assert services["airflow-init"]["entrypoint"] == "/bin/bash" and init[0] == "-c"
    inline = tmp_path / "airflow-init.sh"
    inline.write_text(_interpolate(init[1]))
    for script in (inline, REPO / "deploy" / "postgres" / "init-mlpipe-db.sh"):
        proc = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, (script, proc.stderr)
    assert os.access(REPO / "deploy" / "postgres" / "init-mlpipe-db.sh", os.X_OK)
