"""The loaders' pre-flight check and the `radiobject bench-loader` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import radiobject as ro
from radiobject import WriteConfig
from radiobject.exceptions import RadiObjectError
from radiobject.writers import RadiObjectWriter

ROOT = Path(__file__).resolve().parents[1]


def _dataset(uri: str, n: int = 4) -> None:
    rng = np.random.default_rng(1)
    subs = [f"s{i}" for i in range(n)]
    with RadiObjectWriter(uri, write=WriteConfig(tile={"orientation": "isotropic"})) as w:
        w.write_obs_meta(pd.DataFrame({"obs_subject_id": subs, "age": list(range(n))}))
        for name in ("T1w", "FLAIR"):
            with w.add_collection(name, shape=(32, 32, 24)) as c:
                for s in subs:
                    c.write_volume(rng.normal(size=(32, 32, 24)).astype(np.float32), f"{s}_{name}", s)


def test_factories_refuse_a_store_that_fails_verification(tmp_path):
    pytest.importorskip("torch")
    import tiledb

    from radiobject.ml import create_training_dataloader

    uri = str(tmp_path / "ds")
    _dataset(uri)
    # Break the dataset's bookkeeping the way an interrupted tool would: verify reports it, voxels
    # are still readable.
    with tiledb.Group(uri, "w") as g:
        g.meta["subject_count"] = 99
    radi = ro.RadiObject(uri)
    with pytest.raises(RadiObjectError, match="failed verification") as e:
        create_training_dataloader([radi.T1w, radi.FLAIR], patch_size=(16, 16, 16), batch_size=2)
    assert "subject_count" in str(e.value) and "radiobject verify" in str(e.value)
    # verify=False skips the check (the user's explicit choice)
    loader = create_training_dataloader([radi.T1w, radi.FLAIR], patch_size=(16, 16, 16), batch_size=2, verify=False)
    assert next(iter(loader))["image"].shape == (2, 2, 16, 16, 16)


def test_a_sound_store_passes_and_is_logged_once(tmp_path, caplog):
    pytest.importorskip("torch")
    import logging

    from radiobject.ml import create_training_dataloader

    uri = str(tmp_path / "ok")
    _dataset(uri)
    radi = ro.RadiObject(uri)
    with caplog.at_level(logging.INFO, logger="radiobject.ml"):
        loader = create_training_dataloader([radi.T1w], patch_size=(16, 16, 16), batch_size=2, seed=3)
    lines = [r.getMessage() for r in caplog.records if r.name == "radiobject.ml"]
    assert len(lines) == 1
    for part in (f"store={uri}", "items=4", "mode=patch", "batch=2", "seed=3", "num_workers=0"):
        assert part in lines[0], (part, lines[0])
    assert len(list(loader)) == 2


def _bench_args(uri: str) -> list[str]:
    return [
        "bench-loader", uri, "-c", "T1w", "-c", "FLAIR", "--patch", "16", "--batch-size", "2",
        "--seconds", "6", "--threads", "1", "2", "--prefetch", "0", "1", "--workers", "0",
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_loader_prints_the_best_setting_as_code(tmp_path):
    pytest.importorskip("torch")
    uri = str(tmp_path / "b")
    _dataset(uri)
    proc = subprocess.run(
        [sys.executable, "-m", "radiobject", *_bench_args(uri)],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "[4/4] threads=2 prefetch=1 num_workers=0" in proc.stderr  # progress lines
    out = proc.stdout
    assert "Best: threads=" in out and "samples/s" in out
    code = out[out.index("from radiobject import") :]
    assert "configure(read=ReadConfig(max_workers=" in code
    assert "create_training_dataloader(collections=[radi.T1w, radi.FLAIR]" in code
    # the pasted code runs as it is
    run = subprocess.run([sys.executable, "-c", code + "\nprint(len(next(iter(loader))['image']))"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("2")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_native_command_runs_bench_loader_through_python(tmp_path):
    exe = shutil.which("radiobject", path=str(ROOT / ".venv" / "bin"))
    if exe is None or not os.access(exe, os.X_OK):
        pytest.skip("the native radiobject binary is not installed")
    uri = str(tmp_path / "n")
    _dataset(uri)
    args = _bench_args(uri)
    args[args.index("--threads") + 1 : args.index("--threads") + 3] = ["1"]
    args[args.index("--prefetch") + 1 : args.index("--prefetch") + 3] = ["0"]
    proc = subprocess.run([exe, *args, "--json"], capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr
    import json

    report = json.loads(proc.stdout)
    assert report["best"]["samples_per_s"] > 0 and len(report["results"]) == 1
