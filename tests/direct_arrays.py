"""Arrays and helpers for the differential tests of radiobject's own TileDB format reader
(tests/test_direct_read.py).

* The shared, libtiledb-verified generators (``make_arrays.py``, ``make_arrays_extra.py``,
  ``write_radiobject_volumes.py``) run once per session into a temporary ``$TDB_ARRAYS``.
* ``random_specs`` / ``make_random`` build seeded random arrays with tiledb-py: dtype, shape,
  tile extents, cell/tile order, filter pipeline and partial/overlapping writes.
* ``tiledb_read`` is the reference: libtiledb through tiledb-py.
* ``assert_same`` compares bitwise (NaN payloads included) and explains the first difference.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER_PATH = ROOT / ".peers" / "radiobject-0.1.1"


def tools_dir() -> Path | None:
    """The folder of the shared generators and reference reader, if present."""
    cands = [
        os.environ.get("RADIOBJECT_DIRECT_TOOLS"),
        "/work/shared/tools/tiledb-direct-read",
        str(ROOT.parent / "shared" / "tools" / "tiledb-direct-read"),
    ]
    for c in cands:
        if c and (Path(c) / "make_arrays.py").is_file() and (Path(c) / "direct_read.py").is_file():
            return Path(c)
    return None


def peer_available() -> bool:
    return (PEER_PATH / "radiobject" / "__init__.py").is_file()


# ---------------------------------------------------------------------------------------------
# The shared generators' arrays (names fixed by the generators; checked after generation)
# ---------------------------------------------------------------------------------------------

ARRAYS = [
    "f32_64cube_zstd_row",
    "f32_64cube_zstd_col",
    "u8_axial_zstd_col",
    "u8_axial_zstd_row",
    "u16_coronal_zstd_col",
    "i16_byteshuffle_zstd",
    "f32_byteshuffle_zstd_col",
    "f32_lz4",
    "f32_gzip",
    "f32_bitshuffle_zstd",
    "i16_bitshuffle_lz4",
    "f32_md5_zstd_sha256",
    "f64_nofilter",
    "i32_posdelta_zstd",
    "i16_doubledelta",
    "i32_delta_zstd",
    "f32_chunk1mib_zstd",
    "f32_chunk0_zstd",
    "i16_negdomain_zstd",
    "u8_dims_uint16",
    "f32_two_fragments",
    "f32_partial",
    "f32_consolidated",
    "f32_consolidated_vacuumed",
    "f32_cons_commits_fragmeta",
]
ARRAYS_EXTRA = [
    "i16_bitshuffle_odd13",
    "i32_bitshuffle_2x5",
    "f64_bitshuffle_odd",
    "u8_bitshuffle",
    "u16_byteshuffle_odd",
    "f32_4d_col",
    "two_attrs",
    "evolved_schema",
    "time_travel",
    "encrypted",
    "nullable",
    "current_domain",
]
ARRAYS_MAIN = ["main_f32_iso", "main_f32_axial", "main_u8_axial", "main_u8_iso_fortran"]
ARRAYS_PEER = ["peer_f32_axial", "peer_f32_iso", "peer_u8_axial"]

GROUP = {
    **{n: "arrays" for n in ARRAYS},
    **{n: "arrays_extra" for n in ARRAYS_EXTRA},
    **{n: "arrays_rw" for n in ARRAYS_MAIN + ARRAYS_PEER},
}
ALL_GENERATED = ARRAYS + ARRAYS_EXTRA + ARRAYS_MAIN + ARRAYS_PEER

# Arrays the direct reader must refuse (reason word expected in the message; the volume path
# counts them under RadiObject.Direct.fallback.<counter>).
REFUSED = {"encrypted": ("encrypt", "encryption"), "nullable": ("nullable", "nullable_or_var")}
# Arrays whose whole domain is not what libtiledb reads: the current domain (format 22) is.
CURRENT_DOMAIN = {"current_domain": [(0, 60), (0, 60), (0, 60)]}
# Arrays with several commits (time travel through every t1, t2, t1-1).
MULTI_COMMIT = [
    "f32_two_fragments",
    "f32_consolidated",
    "f32_consolidated_vacuumed",
    "f32_cons_commits_fragmeta",
    "time_travel",
    "evolved_schema",
]


@dataclass
class Generated:
    root: Path
    uris: dict[str, str]
    seconds: dict[str, float]
    peer_error: str | None = None


def _run(cmd: list[str], env: dict, cwd: Path, timeout: float = 600) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=str(cwd), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def generate(root: Path, python: str = sys.executable) -> Generated:
    """Runs every shared generator once into ``root`` (= $TDB_ARRAYS)."""
    tools = tools_dir()
    assert tools is not None
    env = dict(os.environ, TDB_ARRAYS=str(root))
    env.pop("PYTHONPATH", None)
    secs = {}
    secs["make_arrays"] = _run([python, str(tools / "make_arrays.py")], env, root)
    secs["make_arrays_extra"] = _run([python, str(tools / "make_arrays_extra.py")], env, root)
    secs["radiobject_main"] = _run([python, str(tools / "write_radiobject_volumes.py"), "main"], env, root)
    peer_error = None
    if peer_available():
        penv = dict(env, PYTHONPATH=str(PEER_PATH))
        try:
            secs["radiobject_peer"] = _run([python, str(tools / "write_radiobject_volumes.py"), "peer"], penv, root)
        except RuntimeError as e:  # reported by the peer tests, not fatal for the others
            peer_error = str(e)
    uris = {}
    for group in ("arrays", "arrays_extra", "arrays_rw"):
        d = root / group
        if d.is_dir():
            for name in sorted(os.listdir(d)):
                uris[name] = str(d / name)
    return Generated(root, uris, secs, peer_error)


# ---------------------------------------------------------------------------------------------
# libtiledb reference
# ---------------------------------------------------------------------------------------------


def domain_lows(uri: str) -> list[int]:
    import tiledb

    with tiledb.open(uri) as A:
        return [int(A.schema.domain.dim(i).domain[0]) for i in range(A.schema.domain.ndim)]


def tiledb_read(uri: str, attr: str, box: list[tuple[int, int]] | None = None, timestamp: int | None = None):
    """libtiledb's read of ``attr``: the whole array (what ``A[:]`` reads) or ``box`` (half-open
    ranges relative to the domain's low corner), as of ``timestamp`` (ms)."""
    import tiledb

    with tiledb.open(uri, timestamp=timestamp) as A:
        q = A.query(attrs=[attr])
        if box is None:
            return q[:][attr]
        dom = A.schema.domain
        sl = tuple(
            slice(int(dom.dim(i).domain[0]) + a, int(dom.dim(i).domain[0]) + b - 1) for i, (a, b) in enumerate(box)
        )
        return q.multi_index[sl][attr]  # multi_index ranges are inclusive


def schema_geometry(uri: str) -> tuple[list[int], list[int]]:
    """(shape, tile extents) of the array's domain."""
    import tiledb

    with tiledb.open(uri) as A:
        dom = A.schema.domain
        shape = [int(dom.dim(i).domain[1]) - int(dom.dim(i).domain[0]) + 1 for i in range(dom.ndim)]
        ext = [int(dom.dim(i).tile) for i in range(dom.ndim)]
    return shape, ext


def random_boxes(box0: list[tuple[int, int]], extents: list[int], n: int, seed: int) -> list[list[tuple[int, int]]]:
    """``n`` random half-open boxes inside ``box0``, up to two tiles wide per axis (as the
    reference reader's ``verify_regions`` draws them), plus single-voxel and tile-aligned ones."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        box = []
        for (lo, hi), e in zip(box0, extents):
            span = hi - lo
            if i == 0:  # one voxel
                a = int(rng.integers(lo, hi))
                box.append((a, a + 1))
            elif i == 1:  # exactly one tile (clipped)
                t = int(rng.integers(lo // e, (hi - 1) // e + 1))
                box.append((max(lo, t * e), min(hi, (t + 1) * e)))
            else:
                size = int(rng.integers(1, min(span, 2 * e) + 1))
                a = int(rng.integers(lo, hi - size + 1))
                box.append((a, a + size))
        out.append(box)
    return out


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.kind == "f" else a


def assert_same(got, ref, what: str) -> None:
    """Same dtype, shape and bits (floats: NaN payloads and signed zeros included)."""
    got = np.asarray(got)
    ref = np.asarray(ref)
    assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype} != libtiledb {ref.dtype}"
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != libtiledb {ref.shape}"
    gb, rb = _bits(got), _bits(ref)
    if np.array_equal(gb, rb):
        return
    diff = np.argwhere(gb != rb)
    first = tuple(int(i) for i in diff[0])
    nan_aware = got.dtype.kind == "f" and np.array_equal(got, ref, equal_nan=True)
    raise AssertionError(
        f"{what}: {len(diff)} of {got.size} voxels differ from libtiledb; first at {first}: "
        f"got {got[first]!r} libtiledb {ref[first]!r}; last at {tuple(int(i) for i in diff[-1])}; "
        f"box of differences {diff.min(0).tolist()}..{diff.max(0).tolist()}"
        + ("; NaN-aware equal (only NaN payloads / signed zeros differ)" if nan_aware else "")
    )


# ---------------------------------------------------------------------------------------------
# Seeded random arrays
# ---------------------------------------------------------------------------------------------

DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"]
PIPELINES = {
    "zstd-1": lambda t: [t.ZstdFilter(level=-1)],
    "zstd1": lambda t: [t.ZstdFilter(level=1)],
    "zstd3": lambda t: [t.ZstdFilter(level=3)],
    "zstd9": lambda t: [t.ZstdFilter(level=9)],
    "lz4": lambda t: [t.LZ4Filter(level=5)],
    "gzip": lambda t: [t.GzipFilter(level=6)],
    "byteshuffle+zstd": lambda t: [t.ByteShuffleFilter(), t.ZstdFilter(level=3)],
    "byteshuffle+lz4": lambda t: [t.ByteShuffleFilter(), t.LZ4Filter()],
    "bitshuffle+lz4": lambda t: [t.BitShuffleFilter(), t.LZ4Filter()],
    "bitshuffle+zstd": lambda t: [t.BitShuffleFilter(), t.ZstdFilter(level=3)],
    "bitshuffle": lambda t: [t.BitShuffleFilter()],
    "md5+zstd+sha256": lambda t: [t.ChecksumMD5Filter(), t.ZstdFilter(level=3), t.ChecksumSHA256Filter()],
    "sha256+lz4+md5": lambda t: [t.ChecksumSHA256Filter(), t.LZ4Filter(), t.ChecksumMD5Filter()],
    "none": lambda t: [],
    # integer cells only
    "delta+zstd": lambda t: [t.DeltaFilter(), t.ZstdFilter(level=3)],
    "doubledelta": lambda t: [t.DoubleDeltaFilter()],
    "doubledelta+zstd": lambda t: [t.DoubleDeltaFilter(), t.ZstdFilter(level=1)],
    "posdelta+zstd": lambda t: [t.PositiveDeltaFilter(), t.ZstdFilter(level=3)],
}
INT_ONLY = {"delta+zstd", "doubledelta", "doubledelta+zstd", "posdelta+zstd"}


@dataclass
class RandomSpec:
    name: str
    seed: int
    dtype: str
    shape: list[int]
    extents: list[int]
    cell_order: str
    tile_order: str
    pipeline: str
    chunksize: int | None
    dim_dtype: str
    lows: list[int]
    writes: list[list[tuple[int, int]]] = field(default_factory=list)  # half-open, relative

    @property
    def id(self) -> str:
        w = "full" if self.writes == [[(0, n) for n in self.shape]] else f"{len(self.writes)}w"
        return (
            f"{self.name}-{self.dtype}-{'x'.join(map(str, self.shape))}-t{'x'.join(map(str, self.extents))}"
            f"-{self.cell_order[0]}{self.tile_order[0]}-{self.pipeline}"
            + (f"-c{self.chunksize}" if self.chunksize is not None else "")
            + f"-{w}"
        )


def _box(rng, shape) -> list[tuple[int, int]]:
    out = []
    for n in shape:
        a = int(rng.integers(0, n))
        b = int(rng.integers(a + 1, n + 1))
        out.append((a, b))
    return out


def random_specs(n: int = 30, seed: int = 20240611) -> list[RandomSpec]:
    """``n`` seeded array descriptions (deterministic, no I/O: used for test ids)."""
    rng = np.random.default_rng(seed)
    names = list(PIPELINES)
    specs = []
    for i in range(n):
        dtype = DTYPES[i % len(DTYPES)] if i < len(DTYPES) else str(rng.choice(DTYPES))
        ndim = 4 if i % 7 == 3 else 3
        while True:
            shape = [int(rng.integers(1, 71)) for _ in range(3)] + ([int(rng.integers(1, 6))] if ndim == 4 else [])
            if i % 10 == 9:  # a few thin / single-voxel axes
                shape[int(rng.integers(0, 3))] = 1
            if np.prod(shape) <= 200_000:
                break
        pipe = names[i % len(names)] if i < len(names) else str(rng.choice(names))
        if pipe in INT_ONLY and dtype.startswith("float"):
            dtype = str(rng.choice([d for d in DTYPES if not d.startswith("float")]))
        posdelta = pipe == "posdelta+zstd"
        while True:
            ext = []
            for n_ in shape:
                if posdelta:  # positive delta needs non-decreasing tiles: extents divide the shape
                    divs = [d for d in range(1, n_ + 1) if n_ % d == 0]
                    ext.append(int(rng.choice(divs)))
                else:
                    k = rng.random()
                    ext.append(n_ if k < 0.25 else int(rng.integers(1, n_ + 1)))
            ntiles = int(np.prod([-(-s // e) for s, e in zip(shape, ext)]))
            if ntiles <= 1500 and int(np.prod(ext)) <= 100_000:
                break
        cell = str(rng.choice(["row-major", "col-major"]))
        tile = str(rng.choice(["row-major", "col-major"]))
        chunksize = None if rng.random() < 0.6 else int(rng.choice([0, 1000, 4096, 1 << 20]))
        dim_dtype = str(rng.choice(["int32", "int32", "int64", "uint16"]))
        if dim_dtype == "int64":
            lows = [int(rng.integers(-500, 500)) for _ in shape]
        elif dim_dtype == "uint16":
            lows = [int(rng.integers(0, 20)) for _ in shape]
        else:
            lows = [int(rng.integers(-3, 4)) for _ in shape]
        full = [(0, n_) for n_ in shape]
        mode = "full" if posdelta else str(rng.choice(["full", "partial", "overlap2", "overlap3"]))
        if mode == "full":
            writes = [full]
        elif mode == "partial":
            writes = [_box(rng, shape)]
        else:
            first = full if rng.random() < 0.5 else _box(rng, shape)
            writes = [first] + [_box(rng, shape) for _ in range(1 if mode == "overlap2" else 2)]
        specs.append(
            RandomSpec(
                f"r{i:02d}", seed * 100 + i, dtype, shape, ext, cell, tile, pipe, chunksize, dim_dtype, lows, writes
            )
        )
    return specs


def _data(spec: RandomSpec, shape, rng) -> np.ndarray:
    dt = np.dtype(spec.dtype)
    if dt.kind == "f":
        smooth = np.add.outer(np.add.outer(np.arange(shape[0]), np.arange(shape[1])), np.arange(shape[2]))
        if len(shape) == 4:
            smooth = np.add.outer(smooth, np.arange(shape[3]))
        v = (smooth * 0.37 + rng.normal(0, 25, size=shape)).astype(dt)
        flat = v.reshape(-1)
        k = max(1, flat.size // 100)
        idx = rng.integers(0, flat.size, size=k)
        flat[idx[0::4]] = np.nan
        flat[idx[1::4]] = np.inf
        flat[idx[2::4]] = -0.0
        flat[idx[3::4]] = -np.inf
        return v
    info = np.iinfo(dt)
    lo, hi = max(int(info.min), -1_000_000), min(int(info.max), 1_000_000)
    if rng.random() < 0.5:  # noise
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dt)
    ramp = np.add.outer(np.add.outer(np.arange(shape[0]) * 3, np.arange(shape[1]) * 5), np.arange(shape[2]))
    if len(shape) == 4:
        ramp = np.add.outer(ramp, np.arange(shape[3]) * 7)
    v = ramp + rng.integers(-2, 3, size=shape)
    return np.clip(v + lo // 2 if lo < 0 else v, lo, hi).astype(dt)


def _posdelta_data(spec: RandomSpec) -> np.ndarray:
    """Non-decreasing in each tile's cell order (the tile-local linear index), clipped to the type."""
    dt = np.dtype(spec.dtype)
    grids = np.meshgrid(*[np.arange(n) % e for n, e in zip(spec.shape, spec.extents)], indexing="ij")
    order = "C" if spec.cell_order == "row-major" else "F"
    idx = np.ravel_multi_index(tuple(grids), spec.extents, order=order)
    return np.minimum(idx, np.iinfo(dt).max).astype(dt)


def make_random(spec: RandomSpec, root: Path) -> str:
    """Creates and writes the array; every write has its own explicit timestamp."""
    import tiledb

    uri = str(root / spec.name)
    dims = [
        tiledb.Dim(
            name="xyzt"[d],
            domain=(spec.lows[d], spec.lows[d] + spec.shape[d] - 1),
            tile=spec.extents[d],
            dtype=np.dtype(spec.dim_dtype),
        )
        for d in range(len(spec.shape))
    ]
    filters = PIPELINES[spec.pipeline](tiledb)
    fl = tiledb.FilterList(filters) if spec.chunksize is None else tiledb.FilterList(filters, chunksize=spec.chunksize)
    schema = tiledb.ArraySchema(
        domain=tiledb.Domain(*dims),
        sparse=False,
        cell_order=spec.cell_order,
        tile_order=spec.tile_order,
        attrs=[tiledb.Attr(name="voxels", dtype=np.dtype(spec.dtype), filters=fl)],
    )
    tiledb.Array.create(uri, schema)
    rng = np.random.default_rng(spec.seed)
    for k, box in enumerate(spec.writes):
        shape = [b - a for a, b in box]
        data = _posdelta_data(spec) if spec.pipeline == "posdelta+zstd" else _data(spec, shape, rng)
        with tiledb.open(uri, "w", timestamp=1_000_000 + 1000 * k) as A:
            sub = tiledb.Subarray(A)
            for d, (a, b) in enumerate(box):  # domain coordinates, inclusive
                sub.add_dim_range(d, (spec.lows[d] + a, spec.lows[d] + b - 1))
            A.write_subarray(sub, np.ascontiguousarray(data))
    return uri


# ---------------------------------------------------------------------------------------------
# Byte-level faults
# ---------------------------------------------------------------------------------------------


def fragment_dirs(uri: str) -> list[Path]:
    return sorted(p for p in (Path(uri) / "__fragments").iterdir() if p.is_dir())


def first_chunk(path: Path) -> dict:
    """Header of the first chunk of the first tile (at offset 0 of a data file): num_chunks (u64),
    then original_len, filtered_len, metadata_len (u32 each)."""
    b = path.read_bytes()[:20]
    num, orig, filt, md = struct.unpack("<QIII", b)
    return {"num_chunks": num, "orig": orig, "filtered": filt, "metadata": md, "data_at": 8 + 12 + md}


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


# ---------------------------------------------------------------------------------------------
# Subprocess runner (a crash or a hang must fail the test, not the session)
# ---------------------------------------------------------------------------------------------

PRELUDE = """
import json, sys, traceback
import numpy as np
import radiobject as ro
from radiobject import _radiobject as rb
args = json.loads(sys.argv[1])
def outcome(fn):
    try:
        r = fn()
        return {"exc": None, "shape": list(np.shape(r)), "value": r}
    except Exception as e:
        return {"exc": type(e).__name__, "msg": str(e), "mro": [c.__name__ for c in type(e).__mro__]}
def emit(**kw):
    clean = {k: ({kk: vv for kk, vv in v.items() if kk != "value"} if isinstance(v, dict) else v) for k, v in kw.items()}
    print("@@RESULT@@" + json.dumps(clean), flush=True)
"""


def run_isolated(code: str, timeout: float = 60, prelude: str = PRELUDE, **args) -> dict:
    """Runs ``code`` (after ``prelude``; it must print one ``@@RESULT@@<json>`` line, e.g. with
    PRELUDE's ``emit(...)``) in a fresh interpreter with ``args`` as JSON in ``sys.argv[1]``, and
    returns the result. A signal, a non-zero exit or a timeout raises AssertionError."""
    script = prelude + textwrap.dedent(code)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=str(ROOT),
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"the fault case hung for more than {timeout}s:\n{(e.stderr or b'')[-3000:]!r}") from None
    if proc.returncode != 0:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        raise AssertionError(f"the fault case crashed ({how}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@")]
    assert lines, f"no result printed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("@@RESULT@@") :])
