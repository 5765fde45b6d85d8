"""Plain values as Dagster metadata: the one place where what ``mm_assets.checks`` and ``mm_assets.reporting``
return (numbers, text, lists, ``Markdown``) becomes what the UI shows.

Why one converter: every asset, check and run-wide observation shows the same kinds of values, and a report that
is a ``Markdown`` string must render as Markdown wherever it lands, not as quoted text in one view and a table in
another.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from mm_assets.reporting.markdown import LakePath, Markdown


def dagster_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Plain figures (a verdict's, a store summary's) as Dagster metadata: ``Markdown`` shown as Markdown, a
    ``LakePath`` as a path, lists and dicts as JSON, the rest as it is."""
    return {k: _metadata_value(v) for k, v in metadata.items()}


def _metadata_value(value: Any) -> Any:
    if isinstance(value, Markdown):
        return dg.MetadataValue.md(str(value))
    if isinstance(value, LakePath):
        return dg.MetadataValue.path(str(value))
    return dg.MetadataValue.json(value) if isinstance(value, list | dict) else value
