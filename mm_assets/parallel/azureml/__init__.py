"""The ``azureml`` runner: batches of store partitions as Azure ML SDK v2 parallel jobs.

- ``storage``   where the lake is, seen from Azure (account, container, blob URLs)
- ``mltable``   a batch staged as an MLTable folder partitioned by the id columns; a local reader of it
- ``shim``      the job's entry script: the real entry script, wrapped (arguments, progress, append-row rows)
- ``codec``     result rows through Azure ML's append-row file and back
- ``progress``  workers' progress and failures as dagster-pipes messages (Azure Blob), merged for the run log
- ``job``       the pipeline job (``parallel_run_function``), its code folder, its YAML
- ``runner``    stage, submit, poll with backoff, cancel, collect, register (``AzureMLRunner``)
- ``build``     ``mm-assets azureml build-job``: the job YAML of a batch, without submitting

Only ``shim``, ``codec``, ``progress`` (job side) and what they import run in the job; none imports Dagster.
"""
