"""The benchmark's daily cycle is the project's jobs: each job's assets are exactly those of the stages it is
split into, and every step of those jobs belongs to a stage."""

from mm_assets.benchmark.run import CYCLE_JOBS, STAGE_ASSETS, bench_definitions, stage_of_step
from mm_assets.benchmark.workload import Workload, bench_settings


def test_each_cycle_job_holds_the_assets_of_its_stages(tmp_path):
    defs = bench_definitions(bench_settings(tmp_path, Workload(series=10, days=30)))
    steps = stage_of_step(defs)
    for job, stages in {"ingest_job": ("ingest",), **CYCLE_JOBS}.items():
        job_def = defs.resolve_job_def(job)
        selected = {key.to_user_string() for key in job_def.asset_layer.executable_asset_keys}
        assert selected == {a for stage in stages for a in STAGE_ASSETS[stage]}, job
        assert {steps[node.name] for node in job_def.graph.nodes} == set(stages), job
