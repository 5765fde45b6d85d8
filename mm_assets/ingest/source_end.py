"""Where the cycle's periods end: the source's last date, unless that is a sale the ingest holds back.

Why: the cycle reads every period from the source's first date to its last. One sale typed 2028 instead of 2016
(after today: ``validation.check_no_future_sales``), or 2018 in an extract that ends in 2016 (``sales_leap``), is
held back by the ingest, but it was also the source's last date: every period up to it (up to today's, 553 weeks)
was ingested as an empty file and a Dagster partition of raw_sales, and once the row was fixed the lake held
periods after the source's newest date, read again by every cycle (``taken_back``).

So the periods end at the newest row dated before the held sales: the newest sale, or a later row without a target
(the plan, which may run past the newest sale into the period in progress and after it: a source whose sales
arrive later than its plan still gets those periods). A plan row dated after the held ones is not counted: it is
read with the plan (``raw/plan/current.parquet``) when it lies after the periods read.

Cost: one MAX query on the date column, only when the source's last date is at or after the first held date.
"""

from __future__ import annotations

import pandas as pd

from mm_assets.ingest.periods import held_from
from mm_assets.ingest.sales_leap import SalesLeap
from mm_assets.settings import Settings


def source_end(reader, settings: Settings, last: pd.Timestamp, leap: SalesLeap | None,
               today: pd.Timestamp | None = None) -> pd.Timestamp:
    """The date the cycle reads periods up to: ``last`` (the source's last date), or, when a sale on or after it
    is held (dated after today, or a ``leap``), the newest row dated before the first held date. ``reader``: a
    ``SourceReader``."""
    today = pd.Timestamp.now().normalize() if today is None else today
    bound = held_from(leap, settings, today)
    if last < bound:
        return last
    before = reader.last_dated(bound.to_pydatetime())
    return last if before is None else min(last, before)
