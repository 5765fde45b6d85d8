"""The daily-cycle benchmark (``mm-assets bench`` / ``make bench``).

Small modules, one job each: ``workload`` (data size, settings, instance), ``measure`` (wall, CPU of the process
tree, peak memory, Dagster storage time), ``baseline`` (the same model the pandas ``groupby().apply`` way),
``report`` (machine, goals, table, JSON) and ``run`` (the stages through Dagster). It imports Dagster, unlike the
job-side packages.
"""
