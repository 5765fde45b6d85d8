"""The local runner's helper processes end with the process that started them.

Why: the pool's workers fork from a forkserver that the runner's process starts. When that process is killed
(``kill -9`` of ``mm-assets cycle``, a run worker's crash), its children are re-parented to init: the forkserver and
a worker in the middle of a fit went on (360 MB each, writing model bundles no registry points at), and nothing that
looks for a dead run's processes finds them, since neither names the run. So each of them watches its parent: the
forkserver its owner (the runner's process, named in ``OWNER_ENV`` when the forkserver starts), each worker the
forkserver, and ends as soon as that parent is gone (the kernel re-parents a child the moment its parent exits).

No Dagster here.
"""

from __future__ import annotations

import os
import threading
import time

OWNER_ENV = "MM_ASSETS_FORKSERVER_OWNER"
INTERVAL_S = 1.0


def exit_with_parent(parent: int | None = None, interval: float = INTERVAL_S) -> threading.Thread:
    """Watch ``parent`` (default: this process's parent now) from a daemon thread; end this process at once when it
    is no longer this process's parent."""
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def watch_owner_if_forkserver() -> None:
    """In the forkserver (imported there as a preload, its parent the owner ``OWNER_ENV`` names): watch it."""
    owner = os.environ.get(OWNER_ENV, "")
    if owner.isdigit() and int(owner) == os.getppid():
        exit_with_parent(int(owner))
