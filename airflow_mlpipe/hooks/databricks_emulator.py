"""A connection to the local Databricks emulator brings the emulator up when it is down (after a reboot, or
``mlpipe databricks stop``), on the port the connection names, so the same pipeline keeps running unattended.

Connections made by ``mlpipe databricks start`` or by attaching a DatabricksCompute on the embedded default
carry ``{"mlpipe_emulator_home": "<folder>"}`` in their extra; a connection to a real workspace does not, and
nothing is started for it. The check is one TCP connect (under a millisecond when the emulator is up).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

EMULATOR_HOME_EXTRA = "mlpipe_emulator_home"


def _reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_emulator(connection: Any, log: Any = None) -> bool:
    """Start the emulator a connection points at if it does not answer; True if it had to be started."""
    home = (connection.extra_dejson or {}).get(EMULATOR_HOME_EXTRA)
    if not home or not connection.port:
        return False
    host = connection.host or "127.0.0.1"
    if _reachable(host, int(connection.port)):
        return False
    if log is not None:
        log.info("The Databricks emulator of connection %r is down: starting it (%s, port %s)",
                 connection.conn_id, home, connection.port)
    subprocess.run([sys.executable, "-m", "airflow_mlpipe.emulators.databricks", "start", "--home", str(home),
                    "--port", str(int(connection.port))], check=True, capture_output=True, timeout=120)
    return True
