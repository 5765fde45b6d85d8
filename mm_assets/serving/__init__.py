"""Online scoring: an Azure ML managed-online-endpoint scoring script that loads models on demand.

There are too many models (one per series) to hold them all, so nothing is loaded at start: a request for a
series looks its serving model up (the production registry's champion, else the series' baseline, as batch
scoring publishes it), reads its bytes from the lake by byte range and the series' rows (history and plan) from
its dataset, and keeps the result in a bounded, thread-safe LRU cache (a limit in models and in bytes);
concurrent requests for the same cold model load it once.

Modules:
  score.py        the entry script (``init()``, ``run()``) that ``azmlinfsrv`` and Azure ML load
  service.py      the service: finds, loads and refreshes a series' model and rows, forecasts, and answers
                  what cannot be read right now (no web framework)
  request.py      the request body parsed and checked: ids, horizon, what-if plans, limits
  cache_entry.py  a series' cached entry and its what-if state, built once when its model is loaded
  plan_checks.py  a what-if plan checked against its series' forecast window and the values its model can take
  answer.py       one series' answer: its points, labels and notes
  unavailable.py  what is raised and answered when a model's file or the registry cannot be read right now
  preload.py      what a worker reads at start: global models, small partition files
  cache.py        the bounded LRU cache with single-flight loading
  shared_models.py  global models many series share, unpickled once per worker within a byte budget
  lookup.py       which stored model serves a series: the production champion (the latest trained one: opt-in)
  rows.py         the series' rows batch scoring forecasts from: its partition's dataset in the lake
  limits.py       the planned regressor values a series' model can take
  config.py       limits from the environment, the settings file in force
  loopback.py     ``azmlinfsrv`` bound to 127.0.0.1 (``make serve``)
  synthetic.py    small synthetic registries for the tests and the benchmark

Nothing here imports Dagster: the serving image (``requirements-serve.txt``) does not contain it.
"""
