"""A what-if plan checked against the series it is for: each planned date inside the series' forecast window and
each value one its model can take (``limits``), every problem naming the field, the series and what is allowed.

Why apart from ``service.py`` and ``request.py``: ``request.py`` checks what a client sent without any model; these
checks need the series' cached entry (its first forecast period, its step and its limits), so ``ForecastService``
runs them once every requested series' model is known, and they need nothing else of it.
"""

from __future__ import annotations

from mm_assets.forecasting.series import FLAG
from mm_assets.serving.cache_entry import CachedModel
from mm_assets.serving.request import PlannedBool, SeriesRequest


def plan_problems(entry: CachedModel, request: SeriesRequest) -> list[dict[str, str]]:
    """Every planned row of the request outside the series' forecast window, and every value its model
    cannot take (``limits``), each naming the field, the series and what is allowed."""
    cfg, h = entry.cfg, request.horizon
    first = entry.first
    last = first + cfg.step * (h - 1)
    step_ns = cfg.step.value
    where = f"series[{request.index}].regressors"
    problems = []
    for ds, values, j in request.plan:
        try:
            offset = ds.value - first.value  # nanoseconds: Timestamp arithmetic costs microseconds per request
        except OverflowError:  # a real date nanoseconds since 1970 cannot count (year 9999, year 1600)
            offset = -1
        if offset < 0 or offset > step_ns * (h - 1) or offset % step_ns:
            problems.append({
                "field": f"{where}[{j}].ds",
                "problem": f"{ds.date()} is not a forecast period of series {request.key}: the {h} periods "
                           f"run from {first.date()} to {last.date()}"
                           + (f", every {cfg.step.days} days" if cfg.step.days != 1 else "")
                           + _gap_words(entry, ds),
            })
        for col, value in values.items():
            limit = entry.limits.get(col)
            if isinstance(value, PlannedBool) and limit is not None and limit.kind != FLAG:
                problems.append({"field": f"{where}[{j}].{col}",
                                 "problem": f"series {request.key}: {str(bool(value)).lower()} is a 0/1 flag's "
                                            f"value, and {col} is not a flag ({limit.kind}): give a number"})
                continue
            reason = limit.problem(value) if limit is not None else None
            if reason is not None:
                problems.append({"field": f"{where}[{j}].{col}", "problem": f"series {request.key}: {reason}"})
    return problems


def _gap_words(entry: CachedModel, ds) -> str:
    """Why a date between the series' origin and its first forecast period is not forecast: the settings' lead
    time (``gap``), which a planner asking for next week may not know of."""
    gap = entry.cfg.gap
    if not gap or not entry.origin < ds < entry.first:
        return ""
    unit = "day" if entry.cfg.is_daily else "week"
    span = f"the {unit}" if gap == 1 else f"the {gap} {unit}s"
    return (f" (gap: {gap}: {span} after the series' newest observed {unit}, {entry.origin.date()}, "
            f"{'is' if gap == 1 else 'are'} the lead time, not forecast)")
