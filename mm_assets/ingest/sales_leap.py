"""Sales dated far after the rest of the source, by a few series: a mistyped year, not new data.

A sale dated after today is held back as a typo (``validation.check_no_future_sales``). A typo that lands before
today is not caught that way: on an extract of an older date, one row typed 2020 instead of 2018 became the
source's newest sale. The cycle then read every period up to it, the other series of that row's store had no row
for months before their store's newest and went dormant (no longer forecast), and every other store looked far
behind.

The rule: the newest sales follow a silence of the whole source longer than ``ingest.max_normal_gap`` periods,
and fewer than half the series that sold in the last period before the silence have a sale after it. A feed that
comes back after an outage brings its series back; a typo brings one. Those sales are then held as the sales
after today are (their series held back with the row named, or the ingest refused under ``on_bad_rows: error``),
and the newest sale is the one before the silence. When the rest of the source reaches those dates, the silence
is gone and they are read as any other.

Cost: two more MIN/MAX queries per cycle and ingest on the date column; the two reads that count the series run
only after a silence.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mm_assets.settings import Settings


@dataclass(frozen=True)
class SalesLeap:
    """Sales from ``start`` on, after a silence following ``before`` (the newest sale of the rest of the source):
    ``series`` of them against ``selling`` series with a sale in the period of ``before``."""

    start: pd.Timestamp
    before: pd.Timestamp
    series: int
    selling: int

    def words(self, settings: Settings) -> str:
        """Why the sales from ``start`` on are taken for mistyped dates (part of a held row's message)."""
        unit = "days" if settings.is_daily else "weeks"
        periods = int((self.start - self.before) / settings.step)
        return (f"dated from {self.start.date()}, {periods:,} {unit} after the rest of the source's newest sale "
                f"({self.before.date()}) with no sale between, by {self.series:,} series against the "
                f"{self.selling:,} that sold in that period: a mistyped date? (more than ingest.max_normal_gap "
                f"{settings.max_normal_gap} periods of silence)")


def sales_leap(reader, settings: Settings, before: pd.Timestamp) -> tuple[pd.Timestamp | None, SalesLeap | None]:
    """(the source's newest sale dated before ``before`` and before a leap, the leap (the rule in the module's
    docstring) or None). ``reader``: a ``SourceReader``."""
    target, step = settings.columns.target, settings.step
    newest = reader.last_observed(target, before=before.to_pydatetime())
    if newest is None:
        return None, None
    silence = (settings.max_normal_gap + 1) * step  # a gap of this long between two sales: more than normal
    prior = reader.last_observed(target, before=(newest - silence + pd.Timedelta(days=1)).to_pydatetime())
    if prior is None:
        return newest, None
    start = reader.first_observed(target, (prior.normalize() + pd.Timedelta(days=1)).to_pydatetime())
    if start is None or start - prior <= silence:
        return newest, None
    after = _selling(reader.read(start.to_pydatetime(), before.to_pydatetime()), settings)
    period_start = prior.normalize() - step + pd.Timedelta(days=1)
    selling = _selling(reader.read(period_start.to_pydatetime(), (prior.normalize() + pd.Timedelta(days=1))
                                   .to_pydatetime()), settings)
    if 2 * after >= selling:
        return newest, None
    return prior, SalesLeap(start.normalize(), prior.normalize(), after, selling)  # no sale between the two


def _selling(rows: pd.DataFrame, settings: Settings) -> int:
    """How many series have a row with a target among ``rows`` (as the source gave them)."""
    cols = settings.columns
    sold = rows[pd.to_numeric(rows[cols.target], errors="coerce").notna()]
    return int(sold[list(cols.ids)].astype(str).drop_duplicates().shape[0])
