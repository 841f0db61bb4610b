"""The hand-written stubs of the native module (radiobject/_radiobject.pyi) match the compiled module."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(300)
def test_stubtest_passes_on_the_native_module(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "radiobject._radiobject"],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,  # keeps mypy's cache out of the checkout
    )
    assert proc.returncode == 0, f"stubtest failed:\n{proc.stdout}\n{proc.stderr}"
