"""The UI bundle shipped in the package matches its sources, and its component tests pass.

``scripts/test.py`` installs the bundle's build and test tools from ``plugins/www/package-lock.json`` (``npm ci``);
here the sources are type-checked and built again into a scratch folder, byte for byte equal to the committed
``dist/mlpipe-ui.js`` (a change to the sources without a rebuild fails CI), and the Vitest component tests run.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess

import pytest

from airflow_mlpipe.plugins.ui import BUNDLE, DIST

WWW = DIST.parent
BIN = WWW / "node_modules" / ".bin"


def _npx(tool: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    assert (BIN / tool).exists(), (f"{BIN / tool} is missing: run the README's test command (python3 scripts/test.py), "
                                   f"which installs it with 'npm ci --prefix {WWW}'")
    return subprocess.run([str(BIN / tool), *args], cwd=WWW, capture_output=True, text=True, timeout=timeout)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_shipped_bundle_is_built_from_these_sources(tmp_path):
    shipped = (DIST / BUNDLE).read_bytes()
    checked = _npx("tsc", "-p", "tsconfig.json")
    assert checked.returncode == 0, f"type errors in the UI sources:\n{checked.stdout}{checked.stderr}"
    built = _npx("vite", "build", "--outDir", str(tmp_path / "dist"), "--emptyOutDir", "--logLevel", "warn")
    assert built.returncode == 0, built.stdout + built.stderr
    rebuilt = (tmp_path / "dist" / BUNDLE).read_bytes()
    assert _sha(rebuilt) == _sha(shipped), (
        f"{DIST / BUNDLE} is not the build of its sources (rebuilt {len(rebuilt)} bytes, shipped {len(shipped)}): "
        f"run 'npm run build' in {WWW} and commit dist/{BUNDLE}")
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == [BUNDLE]  # no CSS, source map or chunk


def test_bundle_leaves_the_host_modules_to_airflow():
    """React, the router and Chakra come from the Airflow UI (one instance each, its theme and color mode)."""
    text = (DIST / BUNDLE).read_text()
    host_modules = re.search(r"\}\)\(([\w,]+)\);?\s*$", text)  # the IIFE is called with the host's globals
    assert host_modules is not None and set(host_modules.group(1).split(",")) == {
        "ChakraUI", "React", "ReactJSXRuntime", "ReactRouterDOM"}, text[-300:]
    # none of React's or Chakra's own code is in it (a second copy would have its own contexts and theme)
    assert "__CLIENT_INTERNALS" not in text and "createSystem" not in text and len(text) < 200_000, len(text)


@pytest.mark.timeout(900)
def test_component_tests_pass():
    if shutil.which("node") is None:
        pytest.fail("node is required for the UI component tests (apt-get install -y nodejs npm)")
    result = _npx("vitest", "run", "--reporter=dot")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
