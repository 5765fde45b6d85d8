"""A job of two steps, each reading the settings file when its process loads this module (as every step of a run
launched from the UI loads the code location), and the first editing the file while the run goes on."""

import os
from pathlib import Path

import dagster as dg

from mm_assets.assets.settings_hold import hold_settings
from mm_assets.settings import load_settings

SETTINGS = load_settings()
EDITED = "horizon: 14\n"


@dg.asset
def trained(context: dg.AssetExecutionContext) -> None:
    hold_settings(context, SETTINGS)
    Path(os.environ["MM_ASSETS_SETTINGS"]).write_text(EDITED)  # an operator's edit in the middle of the run


@dg.asset(deps=[trained])
def scored(context: dg.AssetExecutionContext) -> None:
    hold_settings(context, SETTINGS)


held_job = dg.define_asset_job("held_job", [trained, scored])
defs = dg.Definitions(assets=[trained, scored], jobs=[held_job])


def get_job() -> dg.JobDefinition:
    return defs.resolve_job_def("held_job")
