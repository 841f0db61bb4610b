"""Shared fixtures: temporary URIs, a real S3-compatible server (moto) on 127.0.0.1, and a runner for
the PyPI ``radiobject==0.1.1`` reference package (same import name as ours, so it runs in a
subprocess with its own ``PYTHONPATH``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import radiobject as ro

ROOT = Path(__file__).resolve().parents[1]
PEER_PATH = ROOT / ".peers" / "radiobject-0.1.1"
S3_BUCKET = "radiobject-test"

# Credentials for the local test server only; moto accepts any. Set before anything creates an S3
# client, and never read back by radiobject (TileDB resolves them through the AWS chain).
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing-secret-value")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Test tiers by fixture: a test using the S3 server is `s3`, one running the PyPI reference
    package (the `peer` fixture) is `interop` (markers in pyproject.toml)."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & {"s3_endpoint", "s3_slow_endpoint"}:
            item.add_marker(pytest.mark.s3)
        if "peer" in used:
            item.add_marker(pytest.mark.interop)


@pytest.fixture(autouse=True)
def _fresh_config():
    """Every test starts and ends with the default configuration."""
    ro.reset_radiobject_config()
    yield
    ro.reset_radiobject_config()


@pytest.fixture
def tmp_uri(tmp_path):
    """Returns ``make(name)`` -> a path under a fresh temporary directory."""

    def make(name: str = "vol") -> str:
        return str(tmp_path / name)

    return make


def phantom(shape=(48, 40, 32), dtype=np.float32, seed=0) -> np.ndarray:
    """A smooth blob with noise and an exactly-zero background, like a skull-stripped MRI."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape[:3]], indexing="ij")
    r2 = sum(g**2 for g in grids)
    vol = np.where(r2 < 0.7, 100 + 60 * np.cos(3 * grids[0]) * np.sin(2 * grids[1]), 0.0)
    vol = vol + np.where(r2 < 0.7, rng.normal(0, 5, r2.shape), 0.0)
    if len(shape) == 4:
        vol = np.stack([vol * (1 + 0.1 * t) for t in range(shape[3])], axis=-1)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        vol = np.clip(np.round(vol), max(info.min, -1000), min(info.max, 1000))
    return vol.astype(dtype)


@pytest.fixture
def make_phantom():
    return phantom


# ---------------------------------------------------------------------------------------------
# S3: moto server on 127.0.0.1
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, proc: subprocess.Popen | None, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"S3 test server did not start on port {port} within {timeout}s")


@pytest.fixture(scope="session")
def s3_endpoint():
    """``http://127.0.0.1:<port>`` of a moto S3 server: the one scripts/test.sh started
    (``RADIOBJECT_TEST_S3_ENDPOINT``), or one started here and stopped after the session."""
    given = os.environ.get("RADIOBJECT_TEST_S3_ENDPOINT")
    if given:
        yield given
        return
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if exe is None:
        pytest.fail("moto_server is not installed (bash scripts/setup.sh installs it)")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def s3_config(endpoint: str, **read) -> ro.RadiObjectConfig:
    return ro.RadiObjectConfig(
        s3=ro.S3Config(endpoint=endpoint, use_virtual_addressing=False, region="us-east-1"),
        read=ro.ReadConfig(**read),
    )


@pytest.fixture
def s3_ctx(s3_endpoint):
    """A context configured for the local S3 server."""
    return ro.Context(s3_config(s3_endpoint))


@pytest.fixture
def s3_uri(s3_endpoint, s3_ctx):
    """Returns ``make(name)`` -> ``s3://radiobject-test/<unique>/<name>`` (bucket created once)."""
    prefix = f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}"
    s3_ctx.ensure_bucket(prefix)

    def make(name: str = "vol") -> str:
        return f"{prefix}/{name}"

    return make


@pytest.fixture(scope="session")
def s3_slow_endpoint(s3_endpoint):
    """``http://127.0.0.1:<port>`` of the same moto server behind a proxy that adds 50 ms to every
    request (tests/s3_delay_proxy.py): one round trip per request, as on a real network."""
    from s3_delay_proxy import DelayProxy

    host, port = s3_endpoint.split("://", 1)[-1].rstrip("/").rsplit(":", 1)
    with DelayProxy(host, int(port), 50) as proxy:
        yield proxy.endpoint


# ---------------------------------------------------------------------------------------------
# The PyPI reference package, in a subprocess
# ---------------------------------------------------------------------------------------------


def run_peer(code: str, timeout: float = 300, **args) -> dict:
    """Runs ``code`` with PyPI ``radiobject==0.1.1`` importable as ``radiobject``.

    ``code`` sees ``args`` (a dict, from the keyword arguments) and must assign a JSON-able
    ``result``; the function returns it.
    """
    if not (PEER_PATH / "radiobject" / "__init__.py").exists():
        pytest.fail(f"the reference package is missing at {PEER_PATH} (bash scripts/setup.sh installs it)")
    script = (
        "import json, sys\nargs = json.loads(sys.argv[1])\n"
        + textwrap.dedent(code)
        + ("\nprint('@@RESULT@@' + json.dumps(result))\n")
    )
    env = dict(os.environ, PYTHONPATH=str(PEER_PATH))
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(ROOT),
    )
    if proc.returncode != 0:
        raise AssertionError(f"peer failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@")][-1]
    return json.loads(line[len("@@RESULT@@") :])


@pytest.fixture
def peer():
    return run_peer
