"""What a worker reads before its first request: the global models that current champions point at, and the small
files of the partitions with the most champions.

Why apart from ``service.py``: it runs once, at a worker's start (``ForecastService.preload``, from the scoring
script's ``init()``), and only saves time: what it cannot list or read is logged and left to the first request
that needs it, so nothing here answers or fails a request.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import time
import traceback
from collections.abc import Callable

from mm_assets.parallel.bundles import SHARED_MODEL_BYTES
from mm_assets.serving.lookup import ModelLookup, SharedArtifact
from mm_assets.serving.rows import SeriesRows
from mm_assets.serving.shared_models import SharedModels

log = logging.getLogger("azmlinfsrv.mm_assets")

PRELOAD_FILL = 0.9  # the share of the kept files' budget a worker's start fills (the rest: what requests read)


def read_shared_models(lookup: ModelLookup, shared: SharedModels, read_model: Callable[[SharedArtifact], bytes],
                       parse: bool = True) -> int:
    """Reads the global models that current champions point at into ``shared``, the most-served first, as many
    as fit its budget (``MM_ASSETS_SERVING_SHARED_BYTES``), and with ``parse`` their boosters (``lightgbm``
    importable: a planner's first what-if of a model in the worker waited 12 ms for its four); returns how many.

    Why: a global model is megabytes to read, unpickle and parse (7 ms for a store of 100 products), and the
    first request of each store in each worker paid it, with the requests queued behind it. Models beyond the
    budget are read on first use, as before; one that cannot be read is logged and left to its first request
    (whose series then gets the 500 naming it)."""
    started = time.perf_counter()
    try:
        artifacts = lookup.shared_champions(SHARED_MODEL_BYTES)
    except Exception:  # noqa: BLE001 - preloading only saves time: requests still find their models
        log.warning("the global models to preload cannot be listed:\n%s", traceback.format_exc())
        return 0
    loaded, served, skipped = 0, 0, 0
    parse = parse and importlib.util.find_spec("lightgbm") is not None
    for artifact in artifacts:
        if shared.bytes + artifact.artifact_size > shared.max_bytes:
            skipped += 1
            continue
        try:
            model = shared.get(artifact.address, functools.partial(read_model, artifact))
            if parse and hasattr(model, "parse_boosters"):  # a what-if runs them; a default answer does not
                model.parse_boosters()
            loaded, served = loaded + 1, served + artifact.series
        except Exception:  # noqa: BLE001 - see the docstring
            log.warning("global model %s cannot be preloaded:\n%s", artifact.address, traceback.format_exc())
    shared.loads_here()  # preloads are not a request's
    if artifacts:
        log.info("preloaded %d of %d global models of current champions (%.1f MB, %d series) in %.2f s; %d "
                 "beyond the budget of %.4g MiB are read on first use", loaded, len(artifacts),
                 shared.bytes / 1e6, served, time.perf_counter() - started, skipped,
                 shared.max_bytes / 2**20)
    return loaded


def keep_partition_files(lookup: ModelLookup, rows: SeriesRows) -> int:
    """Reads the small files (dataset, published forecast: ``SeriesRows.keep``) of the partitions with the
    most current champions until the kept files fill most of their budget; returns how many files it read.

    Why: the first request of a partition in a worker reads its whole file (5-20 ms, the others' rows are then
    cut from memory), and those requests were most of the slowest cold ones."""
    started = time.perf_counter()
    try:
        partitions = lookup.champion_partitions()
    except Exception:  # noqa: BLE001 - preloading only saves time: requests still read their rows
        log.warning("the partitions to preload cannot be listed:\n%s", traceback.format_exc())
        return 0
    files, done = 0, 0
    for partition in partitions:
        if rows.kept_bytes >= PRELOAD_FILL * rows.kept_max_bytes:
            break
        files += rows.keep(partition)
        done += 1
    if partitions:
        log.info("preloaded the small files of %d of %d partitions with champions (%d files, %.1f MB) in %.2f s",
                 done, len(partitions), files, rows.kept_bytes / 1e6, time.perf_counter() - started)
    return files
