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


def _refuse_connection() -> None:
    raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 48269)")


def test_an_error_raised_in_a_worker_process_is_its_own_line_not_the_workers_traceback():
    """A process pool gives the parent the worker's error with the worker's whole traceback as its cause: that
    cause was printed under the failed run, 17 lines cut off mid-line, when the lake went away during training."""
    import concurrent.futures as cf
    import sys

    from dagster._utils.error import serializable_error_info_from_exc_info

    from mm_assets.job_runs import innermost_message

    with cf.ProcessPoolExecutor(1) as pool:
        try:
            pool.submit(_refuse_connection).result()
        except ConnectionRefusedError:
            info = serializable_error_info_from_exc_info(sys.exc_info())
    assert info.cause is not None and info.cause.cls_name == "_RemoteTraceback"
    assert innermost_message(info) == "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 48269)"
