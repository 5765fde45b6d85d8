"""mm-assets: the many-models forecasting pattern as Dagster assets.

Importing the package sets how long OpenMP threads spin while they wait (``forecasting.threads``), before any
model library loads its OpenMP runtime."""

from mm_assets.forecasting.threads import brief_openmp_spins

brief_openmp_spins()
