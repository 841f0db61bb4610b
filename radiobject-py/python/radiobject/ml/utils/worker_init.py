"""Initialisation of DataLoader worker processes."""

from __future__ import annotations

import os

from radiobject import _radiobject as _rb

__all__ = ["cpu_count", "worker_init_fn", "worker_threads"]


def cpu_count() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_threads(num_workers: int) -> int:
    """Reader threads per worker process so that workers x threads does not exceed the cores."""
    return max(1, cpu_count() // max(1, num_workers))


def worker_init_fn(worker_id: int) -> None:
    """Sizes this DataLoader worker's reader pool to ``cores // num_workers`` threads, so that
    workers x threads does not exceed the cores.

    The worker's own context needs nothing here: a forked worker never uses its parent's
    contexts (volumes inherited from the parent reopen through a context of the worker on first
    use, the global one for volumes of the parent's global context), and a spawned worker
    unpickles the dataset into contexts of its own. The reference's ``worker_init_fn`` builds a
    context and throws it away."""
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    n = info.num_workers if info is not None else 1
    _rb.set_process_worker_threads(worker_threads(n))
    from radiobject.ml.datasets._base import _process_scope

    _process_scope()  # the worker's cache counters start here, before its first read
