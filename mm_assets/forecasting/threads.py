"""How many threads a model's own thread pool (LightGBM's OpenMP) may use in this process.

Why: the local runner's worker processes are the parallelism. A LightGBM in every worker with as many threads as
the machine has cores oversubscribes them, and OpenMP threads that wait by spinning make that far worse than the
ratio of threads to cores: on 2 shared cores a fit with 2 threads took 51 s, with 1 thread 2.8 s. The runner
tells each worker its share of the cores; a process outside a runner uses the cores it may run on (its CPU
affinity, which a container's CPU set narrows, within its CPU quota), not the machine's count. And a thread
that waits spins only briefly (``brief_openmp_spins``), since other processes may share the cores.
"""

from __future__ import annotations

import os

WORKER_THREADS_ENV = "MM_ASSETS_WORKER_THREADS"
# how long an OpenMP thread of GNU's runtime (LightGBM's, scikit-learn's) spins before it sleeps while it waits
SPIN_ENV, SPIN_DEFAULT = "GOMP_SPINCOUNT", "1000"
CPU_MAX = "/sys/fs/cgroup/cpu.max"  # a container's CPU quota (cgroup v2): "<quota> <period>" or "max <period>"


def brief_openmp_spins() -> None:
    """Let OpenMP threads spin briefly while they wait, then sleep: ``GOMP_SPINCOUNT`` 1000 unless the environment
    sets it. Must run before the OpenMP runtime loads (``mm_assets`` runs it on import).

    Why: GNU's default spins 300,000 times at every wait, which is free on idle cores and ruinous on busy ones. A
    global model's fit has the run's cores to itself, but not the machine: on 2 cores, with one other busy process
    (another cycle, a backtest, the endpoint), a LightGBM fit of 600,000 rows took 16-22 s instead of 3; the same
    fit in a trial cycle of 16,000 series, beside a demo, took 552 s instead of 31. Spinning 1,000 times: 3.2-3.4 s
    idle, 6.1-6.4 s beside the busy process (sleeping at once: 4.6 s idle, 5.4 s busy)."""
    os.environ.setdefault(SPIN_ENV, SPIN_DEFAULT)


def quota_cores(cpu_max: str = CPU_MAX) -> int | None:
    """The cores a container's CPU quota allows (its quota over its period, rounded up), or None without one."""
    try:
        with open(cpu_max) as fh:
            quota, period = fh.read().split()[:2]
        return None if quota == "max" else max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity, within its container's CPU quota. A pod limited to 2
    CPUs on a node of 64 sees 64 in its affinity: a model's thread pool of 64 threads would then wait on each
    other at every step."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        cores = max(1, os.cpu_count() or 1)
    quota = quota_cores()
    return min(cores, quota) if quota else cores


def share_of_cores(workers: int) -> int:
    """Threads per worker when ``workers`` processes share the cores."""
    return max(1, available_cores() // max(1, workers))


def worker_threads() -> int:
    """Threads for a model's thread pool here: the share the runner set for its workers, else every core."""
    raw = os.environ.get(WORKER_THREADS_ENV, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else available_cores()
