"""What a series dataset was cut from, kept in its own Parquet footer, so that the next cut can append to it.

Why: the daily cycle adds one period file to thousands. Cutting every store partition again from all of them
rescans the whole history every day (36.5M rows at 10,000 series × 4,000 days, a third of the datasets stage).
A dataset therefore records what it was cut from: the settings the cut depends on, the period files (the last
name, their count and a digest of every name with its size and stamp), the newest period of its rows and its
duplicate keys. The next cut of that partition appends only the files named after that last one, when

- every file it was cut from is still there and unchanged (the same count and digest), so no period was
  re-ingested, deleted or inserted before the last one; or every file up to the period of its newest sale is, and
  the files after it (periods that held planned rows only, whose sales have arrived since) are read again with the
  new ones: a source whose plan runs ahead of its sales has such a period every day;
- the settings the cut depends on (columns, frequency, horizon, thresholds of the quality figures) are the same;
- it had no duplicate keys and no periods filled in (``ingest.absent_periods: zero``), so that its rows are exactly
  the raw rows it was cut from (plus the plan after them, which is replaced).

A cut that would append nothing to a dataset whose plan rows are the same (a digest of them is kept too) leaves
the file as it is: a run that only needs the datasets (a backtest) does not rewrite them, and the published
forecasts, which name the dataset file they were scored from, still match it.

Anything else cuts the partition again from every file. Both ways give the same dataset and the same quality
figures (tested); the partition's metadata says which was done.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import pandas as pd

from mm_assets.settings import Settings

FOOTER_KEY = "mm_assets.cut"
VERSION = 3  # 2: the digest of the plan rows; 3: the files up to the newest sale, apart


def cut_fingerprint(settings: Settings) -> str:
    """A digest of every setting a cut's rows or quality figures depend on."""
    relevant = {
        "columns": settings.columns.model_dump(mode="json"),
        "partition": settings.partition.model_dump(mode="json"),
        "frequency": settings.frequency,
        "horizon": settings.horizon,
        "min_train_periods": settings.min_train_periods,
        "max_normal_gap": settings.max_normal_gap,
        "absent_periods": settings.ingest.absent_periods,
        "dormant_after": settings.dormant_after,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def sources_digest(signatures: dict[str, str], last: str) -> tuple[str, int]:
    """(digest, count) of the files named up to ``last`` with their signatures."""
    h, count = hashlib.sha256(), 0
    for name in sorted(signatures):
        if name > last:
            break
        h.update(f"{name}\t{signatures[name]}\n".encode())
        count += 1
    return h.hexdigest()[:32], count


@dataclass(frozen=True)
class CutState:
    fingerprint: str
    last_source: str  # the newest period file name the dataset was cut from
    sources_digest: str
    sources: int
    newest: str | None  # the newest period of its raw rows (ISO); planned rows come after it
    duplicate_keys: int
    plan: str = ""  # digest of the planned rows after ``newest`` (``plan_digest``)
    sold_through: str = ""  # the file of the period of its newest sale ("": none), and the digest up to it
    sold_digest: str = ""
    sold_sources: int = 0
    version: int = VERSION

    @classmethod
    def of_cut(cls, settings: Settings, signatures: dict[str, str], newest, duplicate_keys: int,
               plan: str = "", sold=None) -> CutState:
        """``newest``: the newest period of the cut's raw rows; ``sold``: the newest with a sale (None: none)."""
        last = max(signatures) if signatures else ""
        digest, count = sources_digest(signatures, last)
        through = min(f"{pd.Timestamp(sold).date().isoformat()}.parquet", last) if sold is not None and last else ""
        sold_digest, sold_count = sources_digest(signatures, through) if through else ("", 0)
        return cls(cut_fingerprint(settings), last, digest, count,
                   None if newest is None else newest.isoformat(), int(duplicate_keys), plan, through, sold_digest,
                   sold_count)

    def footer(self) -> dict[str, str]:
        return {FOOTER_KEY: json.dumps(asdict(self), sort_keys=True)}

    @classmethod
    def from_footer(cls, footer: dict[str, str]) -> CutState | None:
        """The state in a dataset's footer; ``None`` when there is none or it is of another version."""
        try:
            raw = json.loads(footer[FOOTER_KEY])
            return cls(**raw) if raw.get("version") == VERSION else None
        except (KeyError, TypeError, ValueError):
            return None

    def appendable(self, settings: Settings, signatures: dict[str, str]) -> list[str] | None:
        """The period files to append (named after the last one cut; possibly none), or ``None`` when the
        partition must be cut again from every file (see the module docstring for why)."""
        if (self.fingerprint != cut_fingerprint(settings) or self.duplicate_keys or self.newest is None
                or settings.ingest.absent_periods == "zero"):  # filled rows are not the raw rows they were cut from
            return None
        if sources_digest(signatures, self.last_source) == (self.sources_digest, self.sources):
            return [name for name in signatures if name > self.last_source]
        if self.sold_through and sources_digest(signatures, self.sold_through) == (self.sold_digest,
                                                                                   self.sold_sources):
            return [name for name in signatures if name > self.sold_through]  # the planned periods read again
        return None

    def kept_through(self, new: list[str]) -> pd.Timestamp:
        """The newest period of the previous dataset's rows an append of ``new`` keeps: its newest, or, when the
        files after its newest sale are read again, that sale's period."""
        if new and self.sold_through and min(new) <= self.last_source:
            return pd.Timestamp(self.sold_through.removesuffix(".parquet"))
        return pd.Timestamp(self.newest)


def plan_digest(planned: pd.DataFrame | None) -> str:
    """A digest of the planned rows a cut appends (their columns and values; "" for none)."""
    if planned is None or not len(planned):
        return ""
    h = hashlib.sha256("\t".join(map(str, planned.columns)).encode())
    h.update(pd.util.hash_pandas_object(planned, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]
