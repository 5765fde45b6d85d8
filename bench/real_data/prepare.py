"""Turn the bayesm CSV files (extract_bayesm.R) into mm-assets sources: one SQLite file and one settings file each.

    Rscript bench/real_data/extract_bayesm.R /work/realdata/raw
    .venv/bin/python bench/real_data/prepare.py [--raw /work/realdata/raw] [--root /work/realdata] [NAME ...]

For each data set NAME (tuna, cheese, orangeJuice) it writes, under ROOT/NAME/:

- ``source.db``: SQLite table ``sales`` with columns store, item, date (ISO text 'YYYY-MM-DD', a Monday), sales,
  price and the data set's promotion columns, one row per observed store x item x week (missing weeks stay
  missing: no row is invented);
- ``mm_assets.yaml``: the project settings for it (weekly W-MON, horizon 2, gap 1, season 52, storage under
  ROOT/NAME/);
- ``stats.json``: series / rows / series-length figures.

Weeks: bayesm gives week numbers (or, for cheese, only the row order within a retailer); week w is mapped to
BASE_DATE + 7 * w days, BASE_DATE a Monday, so the dates are fictitious but the spacing is real.

Plain pandas; the project itself is not imported.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

BASE_DATE = pd.Timestamp("2015-01-05")  # a Monday (W-MON); early enough that every date is in the past
# (tuna spans 398 weeks: from 2020-01-06 it would end in 2027, and the project ingests no period after today)
assert BASE_DATE.day_name() == "Monday"
NAMES = ("tuna", "cheese", "orangeJuice")


def week_to_date(week: pd.Series) -> pd.Series:
    return (BASE_DATE + pd.to_timedelta(week.astype(int) * 7, unit="D")).dt.strftime("%Y-%m-%d")


def safe_id(value: str) -> str:
    """Letters, digits, underscore and dash only: 'ALBANY,NY - PRICE CHOPPER' -> 'ALBANY_NY_PRICE_CHOPPER'."""
    return re.sub(r"[^A-Za-z0-9]+", "_", value).strip("_")


# ---- one function per data set: raw bayesm CSV -> long table (store, item, week, sales, price, promo...) --------
def tuna(raw: Path) -> tuple[pd.DataFrame, list[str]]:
    """One chain (Dominick's), 7 brands, weeks 1..398 of which 338 observed.
    sales = MOVE# (units), price = exp(LPRICE#), display = NSALE# (display activity, 0..1)."""
    wide = pd.read_csv(raw / "tuna.csv")
    parts = []
    for b in range(1, 8):
        parts.append(pd.DataFrame({
            "store": "T", "item": str(b), "week": wide["WEEK"],
            "sales": wide[f"MOVE{b}"].astype(float), "price": np.exp(wide[f"LPRICE{b}"]),
            "display": wide[f"NSALE{b}"].astype(float),
        }))
    return pd.concat(parts, ignore_index=True), ["price", "display"]


def cheese(raw: Path) -> tuple[pd.DataFrame, list[str]]:
    """88 retailers (store), one product (item 'cheese'); no week numbers: week = row order within the retailer.
    sales = VOLUME, price = PRICE (USD), display = DISP (share of ACV on display, 0..1)."""
    df = pd.read_csv(raw / "cheese.csv")
    ids = {r: safe_id(r) for r in df["RETAILER"].unique()}
    if len(set(ids.values())) != len(ids):
        raise SystemExit(f"cheese: sanitized retailer ids collide: {ids}")
    return pd.DataFrame({
        "store": df["RETAILER"].map(ids), "item": "cheese", "week": df["ROW"] - 1,
        "sales": df["VOLUME"].astype(float), "price": df["PRICE"].astype(float), "display": df["DISP"].astype(float),
    }), ["price", "display"]


def orange_juice(raw: Path) -> tuple[pd.DataFrame, list[str]]:
    """83 stores x 11 brands, weeks 40..160 with holes. sales = round(exp(logmove)), price = price<brand> of the
    row (own price; the other brands' prices are dropped), deal (0/1 in-store coupon), feat (feature ad, 0..1)."""
    df = pd.read_csv(raw / "orangeJuice.csv")
    prices = df[[f"price{b}" for b in range(1, 12)]].to_numpy()
    own = prices[np.arange(len(df)), df["brand"].to_numpy() - 1]
    return pd.DataFrame({
        "store": "S" + df["store"].astype(str), "item": "B" + df["brand"].astype(str), "week": df["week"],
        "sales": np.round(np.exp(df["logmove"])), "price": own,
        "deal": df["deal"].astype(float), "feat": df["feat"].astype(float),
    }), ["price", "deal", "feat"]


BUILDERS = {"tuna": tuna, "cheese": cheese, "orangeJuice": orange_juice}
# cheese series have 52-68 weeks (a 10-origin backtest trains on 31..65 of them): 30 lets every model type be tried
# at every origin (the per-series default, horizon + gap + 30 = 33, would leave the oldest origin to the baseline)
MIN_TRAIN_PERIODS = {"cheese": 30}


def stats(long: pd.DataFrame) -> dict:
    g = long.groupby(["store", "item"])["week"]
    span = g.max() - g.min() + 1  # weeks from first to last observation (the regular grid the project builds)
    observed = g.size()
    missing = span - observed
    return {
        "series": int(len(observed)), "rows": int(len(long)), "stores": int(long["store"].nunique()),
        "items": int(long["item"].nunique()),
        "first_date": str(week_to_date(pd.Series([long["week"].min()])).iloc[0]),
        "last_date": str(week_to_date(pd.Series([long["week"].max()])).iloc[0]),
        "weeks_span": {"min": int(span.min()), "median": float(span.median()), "max": int(span.max())},
        "weeks_observed": {"min": int(observed.min()), "median": float(observed.median()), "max": int(observed.max())},
        "missing_weeks_total": int(missing.sum()),
        "series_with_missing_weeks": int((missing > 0).sum()),
        "missing_weeks_per_series": {"min": int(missing.min()), "median": float(missing.median()),
                                     "max": int(missing.max())},
        "zero_sales_rows": int((long["sales"] == 0).sum()),
    }


def settings(name: str, folder: Path, regressors: list[str], start_date: str) -> dict:
    model: dict = {}  # the default model type; `mm-assets backtest --model a,b` compares others
    if name in MIN_TRAIN_PERIODS:
        model["min_train_periods"] = MIN_TRAIN_PERIODS[name]
    return {
        "source": {"url": f"sqlite:///{folder / 'source.db'}", "table": "sales"},
        "columns": {"timestamp": "date", "ids": ["store", "item"], "target": "sales", "regressors": regressors},
        "partition": {"column": "store", "buckets": 0},
        "frequency": "W-MON",
        "horizon": 2,
        "gap": 1,
        "season_length": 52,
        **({"model": model} if model else {}),
        "storage": {
            "lake": str(folder / "lake"),
            "registry": f"sqlite:///{folder / 'registry.db'}",
            "warehouse": f"sqlite:///{folder / 'warehouse.db'}",
            "production_registry": f"sqlite:///{folder / 'production.db'}",
        },
        "ingest": {"start_date": start_date},
    }


def prepare(name: str, raw: Path, root: Path) -> dict:
    long, regressors = BUILDERS[name](raw)
    if long[["store", "item", "week"]].duplicated().any():
        raise SystemExit(f"{name}: duplicate store/item/week rows")
    if long[["sales", *regressors]].isna().any().any():
        raise SystemExit(f"{name}: missing values in sales/regressors")
    long = long.sort_values(["store", "item", "week"], ignore_index=True)
    info = stats(long)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    table = long.assign(date=week_to_date(long["week"]))[["store", "item", "date", "sales", *regressors]]
    db = folder / "source.db"
    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as conn:
        table.to_sql("sales", conn, index=False, dtype={"store": "TEXT", "item": "TEXT", "date": "TEXT"})
        conn.execute("CREATE INDEX sales_date ON sales (date)")
    header = (f"# mm-assets settings for the bayesm '{name}' data set, written by bench/real_data/prepare.py.\n"
              f"# Dates are fictitious Mondays: week w -> {BASE_DATE.date()} + 7w days.\n"
              "# promotion: not set, so the defaults of the mm_assets version that runs apply.\n")
    if name in MIN_TRAIN_PERIODS:
        header += (f"# model.min_train_periods {MIN_TRAIN_PERIODS[name]}: series are short "
                   f"({info['weeks_span']['min']}..{info['weeks_span']['max']} weeks).\n")
    (folder / "mm_assets.yaml").write_text(header + yaml.safe_dump(settings(name, folder, regressors,
                                                                             info["first_date"]), sort_keys=False))
    (folder / "stats.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"data sets (default all): {', '.join(NAMES)}")
    parser.add_argument("--raw", type=Path, default=Path("/work/realdata/raw"), help="extract_bayesm.R's folder")
    parser.add_argument("--root", type=Path, default=Path("/work/realdata"), help="one folder per data set here")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"unknown data set(s) {unknown}; choose from {', '.join(NAMES)}")
    for name in args.names or NAMES:
        info = prepare(name, args.raw.resolve(), args.root.resolve())
        s, o, m = info["weeks_span"], info["weeks_observed"], info["missing_weeks_per_series"]
        print(f"{name}: {info['series']} series ({info['stores']} stores x {info['items']} items), {info['rows']:,} rows, "
              f"{info['first_date']}..{info['last_date']}; weeks first..last obs min/median/max "
              f"{s['min']}/{s['median']:g}/{s['max']}, observed {o['min']}/{o['median']:g}/{o['max']}; "
              f"missing weeks {info['missing_weeks_total']:,} in {info['series_with_missing_weeks']} series "
              f"(per series {m['min']}/{m['median']:g}/{m['max']}); zero-sales rows {info['zero_sales_rows']}")
        print(f"  -> {args.root.resolve() / name}/source.db, mm_assets.yaml, stats.json")


if __name__ == "__main__":
    main()
