"""Measuring one benchmark stage: wall time, CPU of the whole process tree, peak resident memory, and the time
Dagster spends in its own storage (run and event bookkeeping).

Why a process tree and not ``time.process_time()``: the work of a stage happens mostly in the local runner's
worker processes. Those are forked by a multiprocessing *forkserver* (a long-lived child of this process) and
reaped by it, so their CPU shows up neither in this process's ``RUSAGE_CHILDREN`` nor as live processes once
they are gone: it is in the forkserver's ``children_user`` / ``children_system``. CPU of the tree is therefore
this process's own rusage + ``RUSAGE_CHILDREN`` (children we reaped) + for every *live* descendant its own CPU
and that of the children it reaped. Taken before and after a stage, the difference is the stage's CPU.

Peak memory is the sum of the resident set sizes of this process and its descendants, sampled by a background
thread. Pages shared between processes (the forkserver's preloaded libraries) count once per process, so it is
an upper bound of what the machine needs, which is the safe side for a ``≤ 4 GiB`` goal.

Bookkeeping: every public method of the instance's run, event-log and schedule storages is wrapped with a
timer while the stage runs. ``execute_in_process`` stores its runs and events through that very instance
object in this process, so the timers see exactly this process's storage calls (worker processes never touch
the Dagster instance). Nested storage calls are counted once (outermost call only).

Stages within a run (:class:`StageClock`): a deployment runs the cycle as the project's jobs, several stages to a
run (``train_job`` = datasets + training, ``promote_job`` = gate + scoring), and pays Dagster's cost of a run once
per job, not once per stage. The benchmark runs those jobs and splits each run at the step where the next stage
begins (its ``STEP_START`` event, as it is handed to the event log): wall, CPU, peak memory and bookkeeping from there
on are the next stage's. What a run costs before its first step (creating it, its planned events, resources) is
its first stage's, what it costs after its last step its last stage's, so the stages add up to the runs. The
instruments are read between two timings, so their own cost is in no stage.
"""

from __future__ import annotations

import contextlib
import inspect
import resource
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

STORAGE_ATTRIBUTES = ("run_storage", "event_log_storage", "schedule_storage")


def _descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def tree_cpu_seconds() -> float:
    """User + system CPU seconds used so far by this process and all its descendants (live or reaped)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    for proc in _descendants():
        try:
            t = proc.cpu_times()
        except psutil.Error:  # exited between listing and reading
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_rss_bytes(processes: list[psutil.Process] | None = None) -> int:
    """Resident memory of this process plus every live descendant (or of ``processes``, listed earlier)."""
    total = 0
    for proc in processes if processes is not None else [psutil.Process(), *_descendants()]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


class PeakRssSampler:
    """Samples :func:`tree_rss_bytes` every ``interval`` seconds in a daemon thread; ``peak`` is the maximum.

    The process tree is listed again every ``relist`` seconds only: listing it walks every process of the
    machine (5 CPU-seconds in a 76-second stage at 50 ms), reading a known process' memory costs little. A
    worker that starts is seen within ``relist``; its memory grows over seconds, not in its first moments."""

    def __init__(self, interval: float = 0.05, relist: float = 0.5):
        self.interval = interval
        self.relist = relist
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._processes: list[psutil.Process] | None = None
        self._listed_at = 0.0

    def _sample(self) -> None:
        now = time.monotonic()
        if self._processes is None or now - self._listed_at >= self.relist:
            self._processes, self._listed_at = [psutil.Process(), *_descendants()], now
        self.peak = max(self.peak, tree_rss_bytes(self._processes))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakRssSampler:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="bench-rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._processes = None  # the last sample lists the tree again
        self._sample()

    def restart(self) -> int:
        """The peak so far (with a sample taken now), and a new peak from now on (starting at the current sample)."""
        self._sample()
        peak, self.peak = self.peak, 0
        self._sample()
        return peak


class BookkeepingTimer:
    """Times the calls into the storages of one Dagster instance (monkeypatched on the objects, then restored).

    Works on any object with storage attributes; ``seconds`` and ``calls`` accumulate over the timer's life.
    """

    def __init__(self, instance, attributes: tuple[str, ...] = STORAGE_ATTRIBUTES):
        self.instance = instance
        self.attributes = attributes
        self.seconds = 0.0
        self.calls = 0
        self.by_method: dict[str, list[float]] = {}  # "storage.method" -> [calls, seconds]
        self._local = threading.local()
        self._lock = threading.Lock()
        self._patched: list[tuple[object, str]] = []
        # called with each event to be stored through the event log, before its call is timed (their time is not
        # counted)
        self.on_store: list[Callable] = []

    def _storages(self) -> list[tuple[str, object]]:
        out, seen = [], set()
        for name in self.attributes:
            storage = getattr(self.instance, name, None)
            if storage is not None and id(storage) not in seen:
                seen.add(id(storage))
                out.append((name, storage))
        return out

    def _wrap(self, label: str, method):
        timer = self
        stored = label == "event_log_storage.store_event"

        def timed(*args, **kwargs):
            depth = getattr(timer._local, "depth", 0)
            if depth:  # a storage call made by another storage call: counted by the outer one
                return method(*args, **kwargs)
            if stored and args:
                for listener in timer.on_store:
                    listener(args[0])
            timer._local.depth = 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                timer._local.depth = 0
                with timer._lock:
                    timer.seconds += elapsed
                    timer.calls += 1
                    entry = timer.by_method.setdefault(label, [0, 0.0])
                    entry[0] += 1
                    entry[1] += elapsed

        timed.__wrapped__ = method
        return timed

    def install(self) -> BookkeepingTimer:
        for name, storage in self._storages():
            for attr, value in inspect.getmembers(type(storage)):
                if attr.startswith("_") or not inspect.isfunction(value):
                    continue
                bound = getattr(storage, attr)
                if not callable(bound) or "__wrapped__" in getattr(bound, "__dict__", {}):
                    continue
                setattr(storage, attr, self._wrap(f"{name}.{attr}", bound))
                self._patched.append((storage, attr))
        return self

    def uninstall(self) -> None:
        for storage, attr in self._patched:
            with contextlib.suppress(AttributeError):
                delattr(storage, attr)  # the instance attribute hid the class's method
        self._patched.clear()

    def __enter__(self) -> BookkeepingTimer:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()

    def top(self, n: int = 5) -> list[tuple[str, int, float]]:
        return _top(self.by_method, n)

    def reading(self) -> tuple[float, int, dict[str, list[float]]]:
        """(seconds, calls, by method) so far: two readings' difference is what happened in between."""
        with self._lock:
            return self.seconds, self.calls, {k: list(v) for k, v in self.by_method.items()}


def _top(by_method: Mapping[str, list[float]], n: int = 5) -> list[tuple[str, int, float]]:
    ranked = sorted(by_method.items(), key=lambda kv: kv[1][1], reverse=True)
    return [(k, int(v[0]), round(v[1], 3)) for k, v in ranked[:n]]


@dataclass
class StageMeasurement:
    """What one stage cost. ``rows`` / ``models`` are filled by the caller (what the stage processed)."""

    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    bookkeeping_s: float = 0.0
    bookkeeping_calls: int = 0
    rows: int | None = None
    models: int | None = None
    runs: int = 0
    detail: dict = field(default_factory=dict)

    @staticmethod
    def _rate(count: int | None, seconds: float) -> float | None:
        return round(count / seconds, 1) if count is not None and seconds > 0 else None

    def as_dict(self) -> dict:
        return {
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "rows": self.rows,
            "rows_per_s": self._rate(self.rows, self.wall_s),
            "models": self.models,
            "models_per_s": self._rate(self.models, self.wall_s),
            "bookkeeping_s": round(self.bookkeeping_s, 3),
            "bookkeeping_pct": round(100 * self.bookkeeping_s / self.wall_s, 1) if self.wall_s > 0 else None,
            "bookkeeping_calls": self.bookkeeping_calls,
            "runs": self.runs,
            **self.detail,
        }


@contextmanager
def measure(name: str, instance=None, sample_interval: float = 0.05):
    """``with measure("train", instance) as m: ...`` fills ``m`` (a :class:`StageMeasurement`) on exit."""
    m = StageMeasurement(name)
    timer = BookkeepingTimer(instance) if instance is not None else None
    sampler = PeakRssSampler(sample_interval)
    cpu0 = tree_cpu_seconds()
    started = time.perf_counter()
    with sampler:
        if timer is not None:
            timer.install()
        try:
            yield m
        finally:
            if timer is not None:
                timer.uninstall()
            m.wall_s = time.perf_counter() - started
            m.cpu_s = tree_cpu_seconds() - cpu0
    m.peak_rss_mb = sampler.peak / 2**20
    if timer is not None:
        m.bookkeeping_s = timer.seconds
        m.bookkeeping_calls = timer.calls
        m.detail["bookkeeping_top"] = timer.top()


class StageClock:
    """Measures runs that each hold one or more stages, splitting them at the steps (see the module docstring).

    ``stage_of_step`` maps a step key to its stage; a step it does not know stays in the stage before it.
    ``with clock.run("datasets"): ...`` measures one run whose first stage is ``datasets``; ``stages`` holds one
    :class:`StageMeasurement` per stage seen (each counting the runs it took part in), in the order first seen."""

    def __init__(self, instance, stage_of_step: Mapping[str, str], sample_interval: float = 0.05):
        self.stage_of_step = dict(stage_of_step)
        self.stages: dict[str, StageMeasurement] = {}
        self._timer = BookkeepingTimer(instance)
        self._timer.on_store.append(self._storing)
        self._sampler = PeakRssSampler(sample_interval)
        self._current: str | None = None
        self._since = 0.0
        self._cpu = 0.0
        self._booked = (0.0, 0, {})
        self._by_method: dict[str, dict[str, list[float]]] = {}

    def __enter__(self) -> StageClock:
        self._sampler.__enter__()
        self._timer.install()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.uninstall()
        self._sampler.__exit__(*exc)
        for name, m in self.stages.items():
            m.detail["bookkeeping_top"] = _top(self._by_method.get(name, {}))

    def _stage(self, name: str) -> StageMeasurement:
        return self.stages.setdefault(name, StageMeasurement(name))

    def _begin(self, stage: str) -> None:
        self._current = stage
        self._cpu = tree_cpu_seconds()
        self._booked = self._timer.reading()
        self._since = time.perf_counter()

    def _end(self) -> None:
        """Books what happened since ``_begin`` on the current stage."""
        now = time.perf_counter()
        seconds, calls, by_method = self._timer.reading()
        m = self._stage(self._current)
        m.wall_s += now - self._since
        m.cpu_s += tree_cpu_seconds() - self._cpu
        m.peak_rss_mb = max(m.peak_rss_mb, self._sampler.restart() / 2**20)
        m.bookkeeping_s += seconds - self._booked[0]
        m.bookkeeping_calls += calls - self._booked[1]
        mine = self._by_method.setdefault(self._current, {})
        for label, (n, t) in by_method.items():
            n0, t0 = self._booked[2].get(label, (0, 0.0))
            if n > n0:
                entry = mine.setdefault(label, [0, 0.0])
                entry[0] += n - n0
                entry[1] += t - t0

    def _storing(self, event) -> None:
        dagster_event = getattr(event, "dagster_event", None)
        if self._current is None or dagster_event is None or dagster_event.event_type_value != "STEP_START":
            return
        stage = self.stage_of_step.get(dagster_event.step_key or "", self._current)
        if stage != self._current:
            self._end()
            self._stage(stage).runs += 1
            self._begin(stage)

    @contextmanager
    def run(self, first_stage: str):
        """Measures one run (the code in the block) whose first stage is ``first_stage``."""
        self._stage(first_stage).runs += 1
        self._begin(first_stage)
        try:
            yield self
        finally:
            self._end()
            self._current = None
