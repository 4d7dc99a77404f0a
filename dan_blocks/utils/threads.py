"""CPU thread count for the commands (``train``, ``test``, ``sr``): one helper for all of them.

``default_threads()`` is the count a command uses when ``--threads`` is not given. It never oversubscribes a
shared machine:

1. ``OMP_NUM_THREADS``, when set to a positive integer (the first entry of an OpenMP list such as ``"4,2"``),
   is obeyed as given — the user or the launcher (torchrun sets it to 1 per process) has decided;
2. otherwise the CPUs this process may run on (its affinity mask, and a cgroup CPU quota such as a container's
   ``--cpus``, whichever is smaller), divided among the processes that torchrun started on this node
   (``LOCAL_WORLD_SIZE``), at least 1.

``apply_threads(n)`` sets torch's intra-op thread count to ``n`` (or to the default when ``n`` is None) and
returns the count used. Only the standard library is imported at module level, so a command's ``--help`` stays
fast; torch is imported when the count is applied.
"""

from __future__ import annotations

import math
import os
import warnings

__all__ = ["apply_threads", "available_cpus", "default_threads", "parse_threads"]


def _omp_num_threads() -> int | None:
    """The first entry of ``OMP_NUM_THREADS`` as a positive integer, or None when unset or unusable (a warning
    names an unusable value)."""
    raw = os.environ.get("OMP_NUM_THREADS")
    if raw is None or not raw.strip():
        return None
    first = raw.split(",")[0].strip()
    try:
        value = int(first)
    except ValueError:
        value = 0
    if value < 1:
        warnings.warn(
            f"OMP_NUM_THREADS={raw!r} is not a positive integer; ignoring it "
            "(set it to a whole number of threads such as 1 or 4)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return value


def _cgroup_cpu_limit() -> int | None:
    """The cgroup CPU quota rounded up to whole CPUs (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), or
    None when there is none or it cannot be read."""
    candidates = (
        ("/sys/fs/cgroup/cpu.max", None),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    )
    for quota_path, period_path in candidates:
        try:
            with open(quota_path, encoding="ascii") as fh:
                text = fh.read().split()
            if period_path is None:
                if len(text) < 2 or text[0] == "max":
                    return None
                quota, period = int(text[0]), int(text[1])
            else:
                with open(period_path, encoding="ascii") as fh:
                    period = int(fh.read().strip())
                quota = int(text[0])
            if quota <= 0 or period <= 0:
                return None
            return max(1, math.ceil(quota / period))
        except (OSError, ValueError, IndexError):
            continue
    return None


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup quota; at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        count = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        count = min(count, limit)
    return max(1, count)


def default_threads() -> int:
    """The thread count used when none is given: ``OMP_NUM_THREADS`` if set, else the available CPUs divided
    among this node's processes (``LOCAL_WORLD_SIZE``), at least 1."""
    omp = _omp_num_threads()
    if omp is not None:
        return omp
    try:
        local_world = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local_world = 1
    return max(1, available_cpus() // local_world)


def parse_threads(text: str) -> int:
    """argparse ``type=`` for ``--threads``: a positive integer, with a message naming the option otherwise."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--threads must be a positive integer (got {text!r})")
    return value


def apply_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count to ``n`` (``default_threads()`` when None) and return it.

    Raises ValueError for a count below 1.
    """
    if n is None:
        n = default_threads()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the thread count must be a positive integer (got {n!r})")
    import torch

    torch.set_num_threads(n)
    return n
