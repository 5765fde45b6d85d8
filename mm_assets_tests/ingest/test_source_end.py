"""Where the cycle's periods end (``source_end``): a sale held back as mistyped is not the source's last date."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from mm_assets.ingest.sales_leap import SalesLeap
from mm_assets.ingest.source import SourceReader
from mm_assets.ingest.source_end import source_end
from mm_assets.settings import Settings
from mm_assets_tests.ingest.test_source import DAYS, _create

TODAY = pd.Timestamp(2025, 2, 1)


def _readers(tmp_path, date_type):
    """The same source read as a table, by a query and by a query that leaves :end out; 1..9 January sold, a
    plan row on the 11th (no sale), a sale typed 2099."""
    url = f"sqlite:///{tmp_path}/src.db"
    dated = [*DAYS, dt.date(2025, 1, 11), dt.date(2099, 1, 5)]
    values = ([d.isoformat() for d in dated] if date_type is sa.String
              else [dt.datetime.combine(d, dt.time()) for d in dated] if date_type is sa.DateTime else dated)
    _create(url, date_type, values)
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("UPDATE sales SET sales = NULL WHERE sales = :k"), {"k": float(len(DAYS))})
    return (SourceReader(url=url, table="sales", query=None, timestamp="date"),
            SourceReader(url=url, table="ignored", timestamp="date",
                         query="SELECT date, store, item, sales FROM sales WHERE date >= :start AND date < :end"),
            SourceReader(url=url, table="ignored", timestamp="date", query="SELECT date, store, item, sales FROM sales"))


@pytest.mark.parametrize("date_type", [sa.Date, sa.DateTime, sa.String])
def test_the_periods_end_at_the_newest_row_before_a_sale_dated_after_today(tmp_path, date_type):
    """A sale typed 2099 was the source's last date: the cycle read every period up to today's (empty files and
    raw_sales partitions), and after the row was fixed read them again every cycle. The periods end at the newest
    row before it: the plan row of the 11th, after the newest sale (a plan may run ahead of the sales)."""
    for reader in _readers(tmp_path, date_type):
        last = reader.date_range()[1]
        assert last == pd.Timestamp(2099, 1, 5)
        assert reader.last_dated(dt.datetime(2025, 1, 11)) == pd.Timestamp(2025, 1, 9)
        assert reader.last_dated(dt.datetime(2024, 1, 1)) is None
        assert source_end(reader, Settings(), last, None, TODAY) == pd.Timestamp(2025, 1, 11)
        # nothing held: the last date is the source's (a plan after today is cut by the periods that exist)
        assert source_end(reader, Settings(), pd.Timestamp(2025, 1, 11), None, TODAY) == pd.Timestamp(2025, 1, 11)


def test_the_periods_end_before_a_leap_of_sales_dated_far_after_the_rest(tmp_path):
    """Sales dated far after the rest but before today (``sales_leap``): the periods end before the leap's first
    sale, at the newest row before it."""
    reader = _readers(tmp_path, sa.Date)[0]
    leap = SalesLeap(pd.Timestamp(2099, 1, 5), pd.Timestamp(2025, 1, 9), 1, 1)
    assert source_end(reader, Settings(), pd.Timestamp(2099, 1, 5), leap, pd.Timestamp(2100, 1, 1)) == \
        pd.Timestamp(2025, 1, 11)
