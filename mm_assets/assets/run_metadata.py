"""Figures of a whole run, apart from each store's.

Why: a run covers a batch of store partitions, and the metadata of its materialization is copied onto every one
of them, so a run-wide figure (series in the batch, wall time) would show in each store's view as if it were
that store's. Run-wide figures go into one observation of the asset instead (its Events tab); each partition
keeps only its own figures.
"""

import dagster as dg

from mm_assets.assets.metadata import dagster_metadata
from mm_assets.assets.partitions import step_partition_keys


def report_run_wide(context: dg.AssetExecutionContext, metadata: dict, asset_key: str | None = None) -> None:
    context.log_event(dg.AssetObservation(asset_key=asset_key or context.asset_key,
                                          metadata={"stores_in_run": len(step_partition_keys(context)),
                                                    **dagster_metadata(metadata)}))
