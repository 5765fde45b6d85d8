from mm_assets.cli import _with_model
from mm_assets.reporting.words import counted


def test_a_count_of_one_is_singular():
    assert counted(1, "period") == "1 period"
    assert counted(0, "period") == "0 periods"
    assert counted(1200, "store partition") == "1,200 store partitions"
    assert counted(2, "series", "series") == "2 series"
    assert _with_model({"series_with_model": 1}) == "1 series has a model"
    assert _with_model({"series_with_model": 89}) == "89 series have a model"
