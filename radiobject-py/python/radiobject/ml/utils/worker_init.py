"""Initialisation of DataLoader worker processes."""

from __future__ import annotations

import os

from radiobject import _radiobject as _rb

__all__ = ["worker_init_fn", "worker_threads"]


def worker_threads(num_workers: int) -> int:
    """Reader threads per worker process so that workers x threads does not exceed the cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, num_workers))


def worker_init_fn(worker_id: int) -> None:
    """Gives this DataLoader worker process its own context (unlike the reference, which builds
    one and throws it away): volumes inherited from the parent reopen through it on first use,
    and its worker pool gets ``cores // num_workers`` threads."""
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    n = info.num_workers if info is not None else 1
    _rb.set_process_worker_threads(worker_threads(n))
