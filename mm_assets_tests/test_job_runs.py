"""The command line's job runs: a failed step is told once, by its innermost message, not buried under Dagster's
stack traces; Dagster's other warnings still reach the console."""

from __future__ import annotations

import dagster as dg

from mm_assets.job_runs import execute_job


@dg.op
def warns_then_fails(context):
    context.log.warning("a warning the operator should see")
    raise dg.Failure(description="column 'sales' (columns.target): 1 rows are negative; clip in source.query")


@dg.job
def failing_job():
    warns_then_fails()


def test_a_failed_step_prints_its_reason_once_without_a_stack_trace(capfd):
    defs = dg.Definitions(jobs=[failing_job])
    with dg.instance_for_test() as instance:
        run = execute_job(defs, instance, "failing_job", {}, "label")
        again = execute_job(defs, instance, "failing_job", {}, "label")  # the job with our logger is made once
        stored = [e.dagster_event for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]
    console = capfd.readouterr().err
    assert not run.success and not again.success
    assert run.causes == ["warns_then_fails: column 'sales' (columns.target): 1 rows are negative; clip in "
                          "source.query"]
    assert "Stack Trace" not in console and "rows are negative" not in console, console
    assert console.count("a warning the operator should see") == 2  # one per run: warnings are not filtered
    assert "STEP_FAILURE" not in console and "RUN_FAILURE" not in console
    # the run's stored events keep the whole failure, stack trace included, for the UI's run page
    assert len(stored) == 1 and "warns_then_fails" in "".join(stored[0].step_failure_data.error.stack)
