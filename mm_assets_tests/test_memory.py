"""Giving freed memory back: a process that freed many heap blocks holds them until it asks the C library to
return them; ``release_freed`` does, and every in-process job run ends with it."""

from __future__ import annotations

import psutil

from mm_assets import job_runs, memory


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def test_release_freed_returns_freed_heap_pages_to_the_system():
    assert memory._glibc_trim() is not None  # this machine's C library is glibc: the trim is not skipped
    # 4 KB blocks come from glibc's heap (not Python's small-object arenas); one kept in sixteen pins the heap's
    # top, so glibc's own trimming on free gives back nothing and only the explicit trim returns the holes
    blocks = [bytes(4000) + bytes([i % 256]) for i in range(100_000)]
    keep = blocks[::16]
    del blocks
    before = _rss_mb()
    memory.release_freed()
    after = _rss_mb()
    assert before - after > 150, (before, after)
    assert len(keep) == 6250


def test_every_job_run_in_process_ends_by_releasing_what_it_freed(monkeypatch):
    calls = []
    monkeypatch.setattr(job_runs, "release_freed", lambda: calls.append(1))

    class Result:
        success, run_id, all_events = True, "r1", []

    class Job:
        def execute_in_process(self, **kwargs):
            assert not calls  # released after the run, not before
            return Result()

        def with_logger_defs(self, loggers):
            return self

    class Defs:
        def resolve_job_def(self, name):
            return Job()

    run = job_runs.execute_job(Defs(), None, "a_job", {}, "label")
    assert run.success and calls == [1]
