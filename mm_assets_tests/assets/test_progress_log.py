"""A job's progress lines in the run log (``fanout.ProgressLog``): each is an event Dagster stores, so a short job
logs only its end and a long one a line every few seconds."""

from mm_assets.assets.fanout import ProgressLog


def test_a_short_job_logs_its_end_and_a_long_one_a_line_every_few_seconds():
    now = [100.0]
    lines: list[str] = []
    progress = ProgressLog(lines.append, "train_entry", every=5.0, clock=lambda: now[0])
    for done, at in [(100, 101.0), (200, 104.0), (300, 105.5), (400, 107.0), (500, 111.0), (600, 111.5)]:
        now[0] = at
        progress(done, 600, 1)
    assert lines == ["train_entry: 300/600 series done, 1 failed",  # 5.5 s after the start
                     "train_entry: 500/600 series done, 1 failed",  # 5.5 s after that
                     "train_entry: 600/600 series done, 1 failed"]  # the end, always
    short: list[str] = []
    quick = ProgressLog(short.append, "score_entry", clock=lambda: 0.0)
    quick(250, 500, 0)
    quick(500, 500, 0)
    assert short == ["score_entry: 500/500 series done, 0 failed"]


def test_a_whole_batch_counts_its_series_not_the_one_mini_batch():
    lines: list[str] = []
    progress = ProgressLog(lines.append, "train_entry", clock=lambda: 0.0, whole_batch_series=1500)
    progress(1, 1, 0)
    assert lines == ["train_entry: 1500 series in one batch (a global model), done"]
