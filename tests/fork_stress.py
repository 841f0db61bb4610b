"""Forks children while threads of the parent read, open, reopen and count; reports hangs.

Run as a script (the test runs it in a subprocess with a timeout):
    python tests/fork_stress.py DIR [CHILDREN] [THREADS]
Prints one JSON line: {"children": n, "ok": n, "hung": n, "failed": n, "codes": {...},
"parent_iterations": [per thread]}.
Each child reads a volume opened by the parent, opens another, reads through a parallel batch,
takes stats and exits; a child that has not exited 30 s after its fork counts as hung.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import numpy as np


def child(vols, uris, expect) -> int:
    signal.alarm(60)  # a child that hangs past this is reported as killed, never left behind
    import radiobject as ro

    try:
        a = vols[0][0:8, 0:8, 0:8]
        b = ro.Volume(uris[1])[0:8, 0:8, 0:8]
        batch = ro.parallel.read_regions([(v, [(0, 8), (0, 8), (0, 8)]) for v in vols])
        with ro.TileDBStats() as s:
            ro.get_tiledb_ctx()
            vols[2][8:16, 0:8, 0:8]
        s.cache_stats()
        ok = np.array_equal(a, expect) and np.array_equal(b, expect) and all(np.array_equal(x, expect) for x in batch)
        return 0 if ok else 3
    except Exception as exc:  # noqa: BLE001 - any failure is reported through the exit code
        print("child failed:", repr(exc), file=sys.stderr, flush=True)
        return 2


def main() -> None:
    root = sys.argv[1]
    n_children = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    n_threads = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    import radiobject as ro

    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, size=(48, 40, 24)).astype(np.int16)
    uris = [f"{root}/v{i}" for i in range(4)]
    vols = [ro.Volume.from_numpy(u, data) for u in uris]
    expect = data[0:8, 0:8, 0:8]
    stop = threading.Event()
    iterations = [0] * n_threads

    def busy(k: int) -> None:
        # Every lock a child could need is taken here over and over: the global context, volume
        # state (reopen), the caches (cold and warm reads), the worker pool, the stats registry.
        i = 0
        while not stop.is_set():
            v = vols[(k + i) % len(vols)]
            if i % 5 == 0:
                v.reopen() if hasattr(v, "reopen") else None
            if i % 7 == 0:
                ro.Volume(uris[i % len(uris)])[0:4, 0:4, 0:4]
            if i % 3 == 0:
                ro.parallel.read_regions([(w, [(0, 16), (0, 16), (j, j + 4)]) for j, w in enumerate(vols)])
            with ro.TileDBStats():
                v[i % 40 : i % 40 + 8, 0:8, 0:8]
            ro.get_tiledb_ctx().clear_cache() if i % 11 == 0 else None
            i += 1
            iterations[k] = i

    threads = [threading.Thread(target=busy, args=(k,), daemon=True) for k in range(n_threads)]
    for t in threads:
        t.start()
    codes: dict[str, int] = {}
    hung = 0
    running: dict[int, float] = {}

    def reap(block: bool) -> None:
        nonlocal hung
        for pid, started in list(running.items()):
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
            if done == 0:
                if time.monotonic() - started > 30:
                    if os.environ.get("FORK_STRESS_GDB"):  # where did it hang? (debugging aid)
                        import subprocess

                        subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 25"], check=False)
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    hung += 1
                    del running[pid]
                continue
            del running[pid]
            key = str(os.waitstatus_to_exitcode(status))
            codes[key] = codes.get(key, 0) + 1

    try:
        for _ in range(n_children):
            while len(running) >= 8:
                reap(False)
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.01))
            pid = os.fork()
            if pid == 0:
                os._exit(child(vols, uris, expect))
            running[pid] = time.monotonic()
        while running:
            reap(False)
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    ok = codes.get("0", 0)
    summary = {"children": n_children, "ok": ok, "hung": hung, "failed": n_children - ok - hung, "codes": codes}
    print(json.dumps({**summary, "parent_iterations": iterations}))


if __name__ == "__main__":
    main()
