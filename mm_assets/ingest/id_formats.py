"""A source whose ids changed their written form (``2`` → ``'002'``, ``1`` → ``'1.0'``, ``'Store A'`` →
``'STORE A'``) is refused.

Why: an id is compared as text. When a source starts writing a series' ids another way (an export that
zero-pads, a column turned from INTEGER to REAL or TEXT, a case change), the series starts again under a new key
beside its old one: a new store partition, or a new series with a few periods of history and none of its models,
while the old one keeps being published from its last rows. Nothing fails; the forecasts quietly get worse and
BI totals count the product twice.

The rule, per series (all its ids together): a series of the rows read that the lake's newest period does not
hold, whose ids are written like a series it does hold (``canonical``), is a rewrite of it when the stored series
has no row read from the new one's first date on: the new form replaces the old, it does not sell beside it.
A product discontinued years ago and a new one whose code differs by a leading zero are left alone: the old one
is not in the newest period.

Periods read again are judged against their own stored files too (``renamed_in_periods``): a series the files
held that the new read of those periods lacks, and a series the read has that they did not hold, written alike,
are one series renamed. A source that rewrote every row of a store whose sales stopped before the newest period (a
store renamed in its whole history) started that store again beside the old one: no newest-period rule sees it.
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

from mm_assets.ingest.validation import DataValidationError

SHOWN = 3  # pairs named in the message
_WHOLE = re.compile(r"(\d+)(?:\.0+)?")


def canonical(value: str) -> str:
    """The form two spellings of one id share: a whole number without leading zeros or a ``.0``, text
    case-folded in NFC."""
    whole = _WHOLE.fullmatch(value)
    if whole:
        return str(int(whole.group(1)))
    return unicodedata.normalize("NFC", value).casefold()


def spans(frame: pd.DataFrame, id_columns: list[str], timestamp: str) -> pd.DataFrame:
    """Each series' first and last date in ``frame`` (index: its ids as text; columns first, last)."""
    keys = [frame[c].astype(str) for c in id_columns]
    return frame[timestamp].groupby(keys, sort=False).agg(first="min", last="max")


def merged(a: pd.DataFrame | None, b: pd.DataFrame) -> pd.DataFrame:
    """The spans of two reads together."""
    if a is None or not len(a):
        return b
    both = pd.concat([a, b])
    return both.groupby(level=list(range(both.index.nlevels)), sort=False).agg(first=("first", "min"),
                                                                              last=("last", "max"))


def rewritten(read: pd.DataFrame, stored: pd.DataFrame, stored_date: pd.Timestamp | None,
              id_columns: list[str]) -> list[tuple[tuple, tuple]]:
    """(new ids, stored ids) of the series ``read`` (``spans``) writes another way than the lake's newest period
    ``stored`` (its id tuples) has them, by the rule above. ``stored_date``: that period's date when the ingest
    does not read it again (its stored rows then stay, and count as the old series going on), else None."""
    old = {tuple(str(v) for v in row) for row in stored[id_columns].itertuples(index=False, name=None)}
    read_keys = [k if isinstance(k, tuple) else (k,) for k in read.index]
    new = [k for k in read_keys if k not in old]
    if not new or not old:
        return []
    by_form: dict[tuple, tuple] = {}
    for key in old:
        by_form.setdefault(tuple(canonical(v) for v in key), key)
    index = dict(zip(read_keys, range(len(read_keys))))
    pairs = []
    for key in new:
        was = by_form.get(tuple(canonical(v) for v in key))
        if was is None:
            continue
        first = read["first"].iloc[index[key]]
        last_old = read["last"].iloc[index[was]] if was in index else None
        if stored_date is not None and (last_old is None or stored_date > last_old):
            last_old = stored_date
        if last_old is None or last_old < first:
            pairs.append((key, was))
    return pairs


def _fix(column: str, new: str, old: str) -> str:
    """How to write ``column`` as before, for the kind of change from ``old`` to ``new``."""
    if _WHOLE.fullmatch(new) and _WHOLE.fullmatch(old):
        return f"CAST({column} AS INTEGER)" if old.isdigit() and not old.startswith("0") else \
            f"the stored digits (e.g. printf('%0{len(old)}d', {column}))"
    if unicodedata.normalize("NFC", new) == unicodedata.normalize("NFC", old):
        return f"NORMALIZE({column}, NFC) on PostgreSQL 13+, or the same accented letters in the source"
    if old.isupper():
        return f"UPPER({column})"
    if old.islower():
        return f"LOWER({column})"
    return f"{column}'s stored spelling"


def renamed_in_periods(read: pd.DataFrame, stored: pd.DataFrame | None, id_columns: list[str]
                       ) -> list[tuple[tuple, tuple]]:
    """(new ids, stored ids) of the series that periods read again write another way than their stored files:
    ``stored`` (the id tuples of those files, as text) holds a series that ``read`` (the id tuples read of the same
    periods) lacks, and ``read`` one that ``stored`` lacks, written alike. The sets are compared by a merge, and
    only the few series on one side alone are put in ``canonical`` form."""
    if stored is None or not len(stored) or not len(read):
        return []
    both = read[id_columns].merge(stored[id_columns], how="outer", indicator=True)
    new, gone = both[both["_merge"] == "left_only"], both[both["_merge"] == "right_only"]
    if not len(new) or not len(gone):
        return []
    was = {tuple(canonical(v) for v in key): key for key in gone[id_columns].itertuples(index=False, name=None)}
    pairs = []
    for key in new[id_columns].itertuples(index=False, name=None):
        old = was.get(tuple(canonical(v) for v in key))
        if old is not None:
            pairs.append((key, old))
    return pairs


def refuse_rewritten(read: pd.DataFrame | None, stored: pd.DataFrame | None, stored_date: pd.Timestamp | None,
                     id_columns: list[str], renamed: list[tuple[tuple, tuple]] = ()) -> None:
    """Raise ``DataValidationError`` naming the pairs when ``rewritten`` finds any, or ``renamed`` (the pairs
    ``renamed_in_periods`` found in the periods read again) holds some."""
    found = set(renamed)
    if read is not None and stored is not None and len(read) and len(stored):
        found.update(rewritten(read, stored, stored_date, id_columns))
    pairs = sorted(found)
    if not pairs:
        return
    # every column some pair changed (a store and an item column both rewritten: both named), each with its fix
    firsts = {}
    for new, old in pairs:
        for column, a, b in zip(id_columns, new, old):
            if a != b:
                firsts.setdefault(column, (a, b))
    columns = [c for c in id_columns if c in firsts]
    named = " and ".join(repr(c) for c in columns)
    fixes = "; ".join(_fix(c, *firsts[c]) for c in columns)
    shown = ", ".join(f"{'/'.join(n)} (stored as {'/'.join(o)})" for n, o in pairs[:SHOWN])
    more = f" and {len(pairs) - SHOWN} more series" if len(pairs) > SHOWN else ""
    raise DataValidationError(
        f"id column{'s' if len(columns) > 1 else ''} {named} (columns.ids): the source now writes {shown}{more}, and "
        "the stored form has no row since. Each would start a new series beside the stored one, without its history "
        f"or models. Write the ids as before in the source or in source.query (e.g. {fixes}); if they truly are new "
        "series, set ingest.on_rewritten_ids: accept")


def stored_ids(lake, newest_file: tuple[str, ...] | None, id_columns: list[str]) -> pd.DataFrame | None:
    """The distinct id tuples (as text) of the newest stored period file (None: the lake has none yet, or it cannot
    be read; the ingest rewrites a damaged file)."""
    if newest_file is None:
        return None
    try:
        table = lake.read_table(*newest_file, columns=id_columns).to_pandas()
    except Exception:  # noqa: BLE001 - a damaged or reshaped file is the ingest's own business (rebuilt)
        return None
    return table.astype(str).drop_duplicates()


def two_spellings(values: dict[str, set[str]], shown: int = SHOWN) -> list[str]:
    """Id values written two ways in the rows of one ingest (``values``: each id column's distinct values, as
    text), e.g. ``"item: '1' and '1.0'"``: at most ``shown`` of them, with the fix of the first per column.

    Why: each spelling is a series of its own. Across ingests a changed spelling is refused (``refuse_rewritten``),
    but in one read, the first ingest above all, '1' and '1.0' (a column read as numbers in some rows and as text
    in others) or 'I05' and 'i05' made two series without a word, each with part of the sales. A warning, not a
    refusal: two products may truly differ only in case."""
    out = []
    for column, distinct in values.items():
        forms: dict[str, list[str]] = {}
        for value in distinct:
            forms.setdefault(canonical(value), []).append(value)
        twins = sorted(sorted(group) for group in forms.values() if len(group) > 1)
        if twins:
            pairs = "; ".join(" and ".join(repr(v) for v in group) for group in twins[:shown])
            more = f" and {len(twins) - shown} more" if len(twins) > shown else ""
            out.append(f"{column}: {pairs}{more} (one spelling in source.query, e.g. "
                       f"{_fix(column, twins[0][1], twins[0][0])}, if they are one)")
    return out
