"""The environment a step's process starts with: the worker's, minus secrets the step did not ask for.

A worker's environment holds Airflow's own secrets (fernet key, JWT secret, metadata DB URL, broker URL),
Airflow connections and variables (``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``) and whatever credentials the host
exports (``AWS_SECRET_ACCESS_KEY``, ``DATABRICKS_TOKEN``, ...). A step script is user code: it gets none of
them unless its runconfig asks, either with an explicit value or by naming a worker variable
(``environment_variables={"MY_TOKEN": "$MY_TOKEN"}``), so the secret itself never enters the spec.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

#: Airflow settings that hold secrets or URLs with credentials (``_CMD``/``_SECRET`` variants included)
_AIRFLOW_SECRET = re.compile(
    r"^AIRFLOW__.*(SECRET|KEY|CONN|PASSWORD|PASSWD|TOKEN|BROKER_URL|RESULT_BACKEND|SQL_ALCHEMY|KWARGS|DSN|_CMD$)",
    re.IGNORECASE,
)
#: Airflow connections and variables set through the environment
_AIRFLOW_OBJECTS = re.compile(r"^AIRFLOW_(CONN|VAR)_", re.IGNORECASE)
#: a secret anywhere in the name (PGPASSWORD, MYSQL_PASSWD, AZURE_CLIENT_SECRET)
_SECRET_PARTS = ("PASSWORD", "PASSWD", "SECRET", "CREDENTIAL", "PASSPHRASE", "CONNECTIONSTRING", "CONNSTR")
#: a secret as a whole word of the name (TOKENIZERS_PARALLELISM and $PWD stay)
_SECRET_WORDS = frozenset({"PWD", "TOKEN", "TOKENS", "SAS", "APIKEY", "ACCESSKEY", "ACCOUNTKEY", "PRIVATEKEY",
                           "SIGNATURE", "CREDS"})
#: ``<word>_KEY``: a key of that kind (AWS_ACCESS_KEY_ID, AZURE_STORAGE_KEY, OPENAI_API_KEY)
_KEY_KINDS = frozenset({"API", "ACCESS", "PRIVATE", "ACCOUNT", "STORAGE", "SECRET", "MASTER", "SIGNING",
                        "ENCRYPTION", "FERNET", "AUTH", "SHARED", "CLIENT", "SUBSCRIPTION", "SSH", "GPG"})
#: a runconfig value that passes a worker variable through: ``$NAME`` or ``${NAME}``
_PASS_THROUGH = re.compile(r"^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$")
#: the shell's working-directory variables are not passwords
_NOT_SECRET = frozenset({"PWD", "OLDPWD"})


def is_secret_name(name: str) -> bool:
    """True for a variable a step must ask for: Airflow secrets, connections, variables, credential names."""
    if name.upper() in _NOT_SECRET:
        return False
    if _AIRFLOW_OBJECTS.match(name) or _AIRFLOW_SECRET.match(name):
        return True
    upper = name.upper()
    words = [w for w in re.split(r"[^A-Z0-9]+", upper) if w]
    joined = "".join(words)
    if any(part in joined for part in _SECRET_PARTS) or _SECRET_WORDS.intersection(words):
        return True
    if "CONNECTION" in words and "STRING" in words:
        return True
    return any(w == "KEY" and i > 0 and words[i - 1] in _KEY_KINDS for i, w in enumerate(words))


def requested_variables(step: Mapping[str, Any]) -> dict[str, str]:
    """The runconfig's ``environment_variables`` (values as given, ``$NAME`` references unresolved)."""
    runconfig = step.get("runconfig") or {}
    variables = (runconfig.get("environment") or {}).get("environment_variables") or {}
    return {str(k): str(v) for k, v in variables.items()}


def step_environment(step: Mapping[str, Any], log: logging.Logger, fixed: Mapping[str, str] | None = None,
                     worker: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment without secret-looking variables, then ``fixed``, then what the step asks for.

    A requested ``$NAME`` takes the worker's ``NAME`` (secret or not); the names (never the values) of the
    variables withheld are logged once. Raises ``StepFailed`` when a requested worker variable is not set.
    """
    worker = os.environ if worker is None else worker
    requested = requested_variables(step)
    env: dict[str, str] = {}
    withheld: list[str] = []
    for name, value in worker.items():
        if is_secret_name(name):
            withheld.append(name)
        else:
            env[name] = value
    env.update(fixed or {})
    missing: list[str] = []
    for name, value in requested.items():
        ref = _PASS_THROUGH.match(value)
        if ref is None:
            env[name] = value
            continue
        source = ref.group(1) or ref.group(2)
        if source in worker:
            env[name] = worker[source]
        else:
            missing.append(f"{name}={value}")
    if missing:
        from airflow_mlpipe.runtime.step_runner import StepFailed

        raise StepFailed(
            f"Step {step.get('name')!r}: runconfig environment_variables ask for worker variable(s) that are not "
            f"set on this worker: {', '.join(missing)}"
        )
    withheld = sorted(n for n in withheld if n not in env)
    if withheld:
        log.info("Step %r: %d secret-looking worker variable(s) withheld from the step: %s (a step asks for one "
                 "with runconfig environment_variables={'NAME': '$NAME'})", step.get("name"), len(withheld),
                 ", ".join(withheld))
    return env
