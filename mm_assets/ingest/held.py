"""Series held back for bad rows (``ingest.on_bad_rows: hold``): which they are, what the lake keeps of them, and
how they are told.

Why apart from the ingest: the list outlives an ingest. The daily schedule reads only the newest period, so a
series held yesterday still lacks yesterday's rows after today's ingest took today's; it stays listed in
``HELD_FILE`` (and its store's check red) until an ingest reads all of its periods again without holding it.
"""

from __future__ import annotations

import pandas as pd

from mm_assets.ingest.validation import HELD_COLUMNS, PARTITION_COLUMN
from mm_assets.settings import Settings

HELD_FILE = ("raw", "held", "current.parquet")  # series held back and not ingested since (``OUTSTANDING_COLUMNS``)
# a held series' record in HELD_FILE: its problem, and the periods whose new rows it lacks until they are read again
OUTSTANDING_COLUMNS = (*HELD_COLUMNS, "held_from", "held_to")

MAX_HELD_SHOWN = 20  # held series a run's metadata table and log line name


def held_series(lake) -> pd.DataFrame:
    """The series held back whose periods were not read again since (``OUTSTANDING_COLUMNS``). An entry without
    its periods (a list an older version wrote) is left out: the ingest lists again what it holds."""
    if not lake.exists(*HELD_FILE):
        return pd.DataFrame(columns=list(OUTSTANDING_COLUMNS))
    return lake.read_parquet(*HELD_FILE).reindex(columns=list(OUTSTANDING_COLUMNS)).dropna(
        subset=["held_from", "held_to"]).reset_index(drop=True)


def outstanding(before: pd.DataFrame, held: list[dict], keys: list[str]) -> pd.DataFrame:
    """The held series after an ingest of ``keys`` that held ``held``: an earlier one stays listed until an ingest
    reads all of its periods again without holding it (the daily schedule reads only the newest period, so a
    series held yesterday still lacks yesterday's rows after today's ingest took today's)."""
    now = pd.DataFrame(held, columns=list(OUTSTANDING_COLUMNS))
    if not len(before):
        return now
    before = before[(before["held_from"] < keys[0]) | (before["held_to"] > keys[-1])]  # not read again whole
    # held again: its problem now, over the periods of both (what the earlier ingest left out is still missing)
    again = now["series"].isin(before["series"])
    if again.any():
        earlier = before.set_index("series")
        now.loc[again, "held_from"] = [min(a, b) for a, b in zip(now.loc[again, "held_from"],
                                                                earlier.loc[now.loc[again, "series"], "held_from"])]
        now.loc[again, "held_to"] = [max(a, b) for a, b in zip(now.loc[again, "held_to"],
                                                              earlier.loc[now.loc[again, "series"], "held_to"])]
    return pd.concat([before[~before["series"].isin(now["series"])], now], ignore_index=True)


def held_back_line(held: list[dict]) -> str:
    """One warning line of the series an ingest held back, by kind of problem, with the first one's problem."""
    named = ", ".join(h["series"] for h in held[:5]) + (f" and {len(held) - 5:,} more" if len(held) > 5 else "")
    return (f"{len(held):,} series held back for bad rows ({named}; {kinds_line(held_kinds(held))}): "
            "what the lake stored of them stays, their rows of these "
            f"periods wait until the source is fixed and they are ingested again (`mm-assets cycle` reads every "
            f"period). {first_of_each_kind(held)}")


def first_of_each_kind(held: list[dict], kinds: int = 3) -> str:
    """"First: <problem>", or with several kinds of problem "First of each kind: <problem>; <problem>" (the
    ``kinds`` most common): ids held for a '/' and for spaces around them were told of the first kind only."""
    found = held_kinds(held)[:kinds]
    if len(found) == 1:
        return f"First: {found[0][2]}"
    return "First of each kind: " + "; ".join(problem for _, _, problem in found)


def held_back_table(held: list[dict]) -> str:
    """The held series as a Markdown table (the run's ``held_back`` metadata)."""
    lines = ["| series | store | bad rows | first date | kind | problem |", "|---|---|---|---|---|---|"]
    for h in held[:MAX_HELD_SHOWN]:
        problem, kind = h["problem"].replace("|", "\\|"), h["kind"].replace("|", "\\|")
        lines.append(f"| {h['series']} | {h['store'] or ''} | {h['bad_rows']} | {h['first_date'] or ''} | {kind} | "
                     f"{problem} |")
    if len(held) > MAX_HELD_SHOWN:
        lines.append(f"| ... {len(held) - MAX_HELD_SHOWN:,} more (raw/held/current.parquet lists them) | | | | | |")
    return "\n".join(lines)


def once_each(held: list[dict]) -> list[dict]:
    """``held`` with each series once (its first problem): a series bad in several slices is held once, its
    ``bad_rows`` those of that problem in every slice read (the problem's text is of the first slice's rows; it
    then says how many there are in all)."""
    first: dict[str, dict] = {}
    for h in held:
        kept = first.setdefault(h["series"], h)
        if kept is h or h["kind"] != kept["kind"]:
            continue
        kept["bad_rows"] += h["bad_rows"]
        said = kept.setdefault("first_problem", kept["problem"])
        kept["problem"] = f"{said} ({kept['bad_rows']:,} rows in all the periods read)"
    return list(first.values())


def held_kinds(held: list[dict]) -> list[tuple[str, int, str]]:
    """(kind of problem, series held for it, the first such series' problem), the most common first."""
    out: dict[str, list] = {}
    for h in held:
        out.setdefault(h["kind"], [h["kind"], 0, h["problem"]])[1] += 1
    return sorted((tuple(v) for v in out.values()), key=lambda v: -v[1])


def kinds_line(kinds: list[tuple[str, int, str]]) -> str:
    """'By problem: 'price' not a number: 230 series; 'sales' missing: 1 series'."""
    return "By problem: " + "; ".join(f"{kind}: {n:,} series" for kind, n, _ in kinds[:8]) + (
        f"; {len(kinds) - 8} more kinds" if len(kinds) > 8 else "")


def held_ids(held: list[dict], cfg: Settings) -> pd.DataFrame:
    """The id values of the held series with ids (a row without an id belongs to no series, nor to the lake)."""
    ids = list(cfg.columns.ids)
    keys = [h["ids"] for h in held if h["ids"] is not None]
    return pd.DataFrame(keys, columns=ids).drop_duplicates() if keys else pd.DataFrame(columns=ids, dtype=str)


def without(frame: pd.DataFrame, held_ids: pd.DataFrame, cfg: Settings) -> pd.DataFrame:
    """``frame`` without the rows of the series in ``held_ids``."""
    if not len(frame) or not len(held_ids):
        return frame
    ids = list(cfg.columns.ids)
    hit = frame[ids].merge(held_ids.assign(_held=True), on=ids, how="left")["_held"].fillna(False).to_numpy(bool)
    return frame[~hit]


def with_stored(lake, part: pd.DataFrame, path: str, held_ids: pd.DataFrame, cfg: Settings) -> pd.DataFrame:
    """A period's new rows (``part``) without the held series, with the rows the lake already holds of them at
    ``path``: a held series keeps what was stored before its bad row."""
    part = without(part, held_ids, cfg)
    if not len(held_ids) or not lake.exists(path):
        return part
    ids = list(cfg.columns.ids)
    if not lake.readable(path):  # damaged in the lake: what it held of them cannot be kept (the period file is
        return part              # written again from the source, ``rebuilt`` in its metadata)
    stored = lake.read_parquet(path)
    kept = stored.merge(held_ids, on=ids, how="inner")[list(stored.columns)]
    if not len(kept):
        return part
    merged = pd.concat([part, kept[list(part.columns)]], ignore_index=True)
    return merged.sort_values([PARTITION_COLUMN, *ids, cfg.columns.timestamp], ignore_index=True)
