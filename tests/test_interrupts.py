"""Ctrl-C interrupts long work from Python: the call raises KeyboardInterrupt promptly, what was
finished is kept, and the process (and a rerun) carries on. Each case runs in a subprocess that
receives a real SIGINT, with timeouts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def many_images(tmp_path_factory) -> Path:
    """40 noisy volumes: ingesting them on one worker takes several seconds."""
    src = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(1)
    for i in range(40):
        img = nib.Nifti1Image(rng.integers(-1000, 3000, (96, 96, 48), dtype=np.int16), np.eye(4))
        nib.save(img, src / f"sub-{i:03d}.nii.gz")
    return src


def start(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 120) -> str:
    deadline = time.time() + timeout
    assert proc.stdout is not None
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and proc.poll() is not None:
            raise AssertionError(f"ended ({proc.returncode}) before {prefix!r}: {proc.stderr.read()}")
    raise AssertionError(f"no {prefix!r} within {timeout} s")


def test_ctrl_c_interrupts_a_python_ingest_and_keeps_what_it_finished(tmp_path, many_images):
    uri = tmp_path / "ds"
    proc = start(
        f"""
        import sys, time
        from radiobject.ingest import from_images
        def progress(name, done, total):
            if done == 2:
                print("STARTED", flush=True)
        t0 = None
        try:
            from_images({str(uri)!r}, {{"CT": {str(many_images)!r}}}, max_workers=1, progress=progress)
            print("FINISHED", flush=True)
        except KeyboardInterrupt as e:
            print("INTERRUPTED", repr(str(e)), flush=True)
            # the interpreter is usable afterwards
            print("ALIVE", sum(range(10)), flush=True)
        """
    )
    try:
        wait_for_line(proc, "STARTED")
        t_signal = time.time()
        proc.send_signal(signal.SIGINT)
        line = wait_for_line(proc, "INTERRUPTED", timeout=30)
        latency = time.time() - t_signal
        assert wait_for_line(proc, "ALIVE", timeout=10).split()[1] == "45"
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.kill()
    assert latency < 10, f"Ctrl-C took {latency:.1f} s to stop the ingest"
    assert "rerun to resume" in line, line
    # the volumes it finished are kept and recorded: a rerun ingests only the rest, and the dataset verifies
    code = f"""
        import json
        from radiobject.ingest import from_images
        from radiobject.verify import verify
        radi = from_images({str(uri)!r}, {{"CT": {str(many_images)!r}}}, max_workers=2)
        print(json.dumps({{"n": len(radi.CT), "ok": verify({str(uri)!r}, deep=True).ok}}))
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"n": 40, "ok": True}


def test_ctrl_c_interrupts_python_m_radiobject_ingest_with_status_130(tmp_path, many_images):
    uri = tmp_path / "ds"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radiobject",
            "ingest",
            str(uri),
            "--images",
            f"CT={many_images}",
            "-j",
            "1",
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    vols = uri / "collections" / "CT" / "volumes"

    def finished() -> int:  # volumes whose metadata is written
        if not vols.exists():
            return 0
        return sum(
            1 for v in vols.iterdir() if v.name.isdigit() and (v / "__meta").is_dir() and any((v / "__meta").iterdir())
        )

    deadline = time.time() + 120
    while time.time() < deadline and finished() < 2:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "rerun to resume" in err


def test_ctrl_c_interrupts_a_long_batch_read(tmp_path):
    code = f"""
        import time, numpy as np, radiobject as ro
        vols = [ro.Volume.from_numpy({str(tmp_path)!r} + f"/v{{i}}", np.random.default_rng(i).random((128, 128, 64), dtype=np.float32)) for i in range(4)]
        requests = [(v, [(0, 128), (0, 128), (z, z + 1)]) for _ in range(400) for v in vols for z in range(0, 64, 8)]
        ro.configure(read=ro.ReadConfig(tile_cache_size_mb=0, max_workers=1))
        print("STARTED", flush=True)
        t0 = time.time()
        batches = 0
        try:
            # batches back to back (almost all the time inside read_regions) until Ctrl-C, however
            # fast the machine reads one
            while time.time() - t0 < 120:
                ro.parallel.read_regions(requests)
                batches += 1
            print("FINISHED", batches, flush=True)
        except KeyboardInterrupt as e:
            print("INTERRUPTED", batches, repr(str(e)), flush=True)
    """
    proc = start(code)
    try:
        wait_for_line(proc, "STARTED")
        time.sleep(0.5)
        t_signal = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        latency = time.time() - t_signal
    finally:
        proc.kill()
    assert "INTERRUPTED" in out, (out, err)
    assert latency < 10, f"Ctrl-C took {latency:.1f} s to stop the batch"
