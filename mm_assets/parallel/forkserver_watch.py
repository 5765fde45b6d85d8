"""Imported by the local runner's forkserver at its start (a preload): it then ends with the process that started
it (``orphans.watch_owner_if_forkserver``; imported anywhere else, this does nothing)."""

from mm_assets.parallel.orphans import watch_owner_if_forkserver

watch_owner_if_forkserver()
