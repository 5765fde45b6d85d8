"""A source whose ids changed their written form (``2`` → ``'002'``, ``'Store A'`` → ``'STORE A'``) is refused.

Why: an id is compared as text. When a source starts writing its ids another way (an export that zero-pads, a
column turned from INTEGER to TEXT), every series would start again under a new key beside its old one: a new
store partition, series with a few periods of history and none of their models, while the old ones are left
without rows. Nothing fails; the forecasts quietly get worse. So the ids of each ingest are compared with those
of the newest period the lake holds, and a value written another way than a stored value the batch no longer has
is refused, naming both and the fix.
"""

from __future__ import annotations

import unicodedata

import pandas as pd

from mm_assets.ingest.validation import DataValidationError

SHOWN = 3  # pairs named in the message


def canonical(value: str) -> str:
    """The form two spellings of one id share: a number without leading zeros, text case-folded in NFC."""
    if value.isdigit():
        return str(int(value))
    return unicodedata.normalize("NFC", value).casefold()


def rewritten_ids(batch: pd.Series, stored: pd.Series) -> list[tuple[str, str]]:
    """(the batch's value, the stored value) pairs of one id column where the batch writes a stored value another
    way and no longer has it as it was stored."""
    new = pd.Index(pd.unique(batch.astype(str)))
    old = pd.Index(pd.unique(stored.astype(str)))
    gone = old.difference(new)
    arrived = new.difference(old)
    if not len(gone) or not len(arrived):
        return []
    by_form = {canonical(v): v for v in gone}
    return [(v, by_form[canonical(v)]) for v in arrived if canonical(v) in by_form]


def refuse_rewritten_ids(frame: pd.DataFrame, stored: pd.DataFrame | None, id_columns: list[str]) -> None:
    """Raise ``DataValidationError`` when the batch ``frame`` writes ids of ``stored`` (the id columns of the newest
    period in the lake) another way (``rewritten_ids``)."""
    if stored is None or not len(stored) or not len(frame):
        return
    for column in id_columns:
        pairs = rewritten_ids(frame[column], stored[column])
        if pairs:
            shown = ", ".join(f"{new!r} (stored as {old!r})" for new, old in pairs[:SHOWN])
            more = f" and {len(pairs) - SHOWN} more" if len(pairs) > SHOWN else ""
            raise DataValidationError(
                f"id column {column!r} (columns.ids): the source now writes {shown}{more}. Each would start a new "
                "series beside the stored one, without its history or models. Write the ids as before in the source "
                f"or in source.query (e.g. CAST({column} AS INTEGER), or LTRIM({column}, '0')); if they truly are "
                "new series, set ingest.on_rewritten_ids: accept")


def stored_ids(lake, newest_file: tuple[str, ...] | None, id_columns: list[str]) -> pd.DataFrame | None:
    """The distinct id tuples of the newest stored period file (None: the lake has none yet, or it cannot be
    read; the ingest rewrites a damaged file)."""
    if newest_file is None:
        return None
    try:
        return lake.read_table(*newest_file, columns=id_columns).to_pandas().drop_duplicates()
    except Exception:  # noqa: BLE001 - a damaged or reshaped file is the ingest's own business (rebuilt)
        return None
