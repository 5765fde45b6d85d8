"""Embedded demo: a deterministic, realistic retail sales source database (see :mod:`mm_assets.demo.generator`)."""

from mm_assets.demo.generator import (
    COLUMNS,
    DemoSpec,
    easter_sunday,
    generate_sales,
    holiday_calendar,
    item_catalogue,
    iter_sales,
    write_source,
)

__all__ = [
    "COLUMNS",
    "DemoSpec",
    "easter_sunday",
    "generate_sales",
    "holiday_calendar",
    "item_catalogue",
    "iter_sales",
    "write_source",
]
