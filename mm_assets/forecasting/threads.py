"""How many threads a model's own thread pool (LightGBM's OpenMP) may use in this process.

Why: the local runner's worker processes are the parallelism. A LightGBM in every worker with as many threads as
the machine has cores oversubscribes them, and OpenMP threads that wait by spinning make that far worse than the
ratio of threads to cores: on 2 shared cores a fit with 2 threads took 51 s, with 1 thread 2.8 s. The runner
tells each worker its share of the cores; a process outside a runner uses the cores it may run on (its CPU
affinity, which a container's CPU set narrows), not the machine's count.
"""

from __future__ import annotations

import os

WORKER_THREADS_ENV = "MM_ASSETS_WORKER_THREADS"


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


def share_of_cores(workers: int) -> int:
    """Threads per worker when ``workers`` processes share the cores."""
    return max(1, available_cores() // max(1, workers))


def worker_threads() -> int:
    """Threads for a model's thread pool here: the share the runner set for its workers, else every core."""
    raw = os.environ.get(WORKER_THREADS_ENV, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else available_cores()
