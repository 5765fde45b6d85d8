"""The planned values a series' model can take, as the endpoint prints and checks them."""

from __future__ import annotations

import numpy as np
import pytest

from mm_assets.forecasting.series import POSITIVE
from mm_assets.serving.limits import limit_of, number

pytestmark = pytest.mark.serving


def test_a_bound_printed_in_an_answer_and_typed_back_is_accepted():
    """A price history of 0.0264..0.06046875 (orangeJuice's prices per ounce): the bounds are printed whole, and
    what a planner copies from the message is inside them, where six significant digits (0.0604688) were not."""
    limit = limit_of("price", POSITIVE, np.array([0.06046875, 0.0264062, 0.04]))
    assert limit.seen == (0.0264062, 0.06046875)
    message = limit.problem(1.0)
    assert message == ("1 is out of range: price's history ranges 0.0264062..0.06046875, so a plan is accepted within "
                       "0.00264062..0.6046875 (10x either way)")
    for printed in ("0.00264062", "0.6046875"):
        assert limit.problem(float(printed)) is None
    assert limit.problem(0.6046875 * (1 + 1e-6)) is not None and limit.problem(0.00264062 * (1 - 1e-6)) is not None
    assert float(number(0.1 * 0.0264062)) == pytest.approx(0.00264062, rel=1e-12)


@pytest.mark.parametrize("gap, asked, words", [
    (1, "2018-02-05", "(gap: 1: the week after the series' newest observed week, 2018-01-29, is the lead time, not forecast)"),
    (2, "2018-02-12", "(gap: 2: the 2 weeks after the series' newest observed week, 2018-01-29, are the lead time"),
    (1, "2018-01-29", None),  # the origin itself: observed, not the lead time
    (0, "2018-01-29", None),
])
def test_a_plan_date_in_the_lead_time_is_refused_naming_the_gap(gap, asked, words):
    """A planner asking for next week, which ``gap`` leaves out, is told why it is not a forecast period."""
    from types import SimpleNamespace

    import pandas as pd

    from mm_assets.forecasting.series import SeriesConfig
    from mm_assets.serving.plan_checks import plan_problems
    from mm_assets.serving.request import SeriesRequest

    cfg = SeriesConfig(frequency="W-MON", horizon=2, gap=gap)
    origin = pd.Timestamp("2018-01-29")
    entry = SimpleNamespace(cfg=cfg, origin=origin, first=origin + cfg.step * (1 + gap), limits={})
    request = SeriesRequest(index=0, ids=("S1", "B1"), key="S1/B1", horizon=2,
                            plan=((pd.Timestamp(asked), {}, 0),))
    (problem,) = plan_problems(entry, request)
    assert problem["problem"].startswith(f"{asked} is not a forecast period of series S1/B1: the 2 periods run from")
    assert (words in problem["problem"]) if words else ("gap" not in problem["problem"])


def test_a_share_planned_between_the_values_of_its_history_is_named_in_the_answer():
    """A share near 0 or 1 in every week of the history (orangeJuice's feature ads): a plan of 0.5 is new to the
    model, whose answer there went both ways (0.75 below 0.5 in most series), so the answer's note says so; a
    value near one the history had is not named, nor a share without history."""
    from types import SimpleNamespace

    from mm_assets.forecasting.series import SHARE
    from mm_assets.serving.answer import _beyond_history

    limit = limit_of("feat", SHARE, np.array([0.0, 0.0, 0.02, np.nan, 0.95, 1.0, 0.97]))
    assert limit.spans == ((0.0, 0.02), (0.95, 1.0)) and limit.problem(0.5) is None
    assert [limit.unseen(v) for v in (0.0, 0.1, 0.5, 0.75, 0.86, 1.0)] == [False, False, True, True, False, False]
    assert not limit_of("feat", SHARE, np.array([np.nan])).unseen(0.5)
    price = limit_of("price", POSITIVE, np.array([2.0, 3.0]))
    entry = SimpleNamespace(limits={"feat": limit, "price": price})
    plan = [(None, {"feat": 0.5, "price": 2.5}, 0), (None, {"feat": 0.75, "price": 4.0}, 1), (None, {"feat": 1.0}, 2)]
    note = _beyond_history(entry, SimpleNamespace(plan=plan))
    assert note == ("planned price 4 beyond this series' history (price 2..3); planned feat 0.5, feat 0.75 between "
                    "the values of this series' history (feat 0..0.02, 0.95..1): the model has no evidence there (its "
                    "answer extends what it saw, and the period after it reads it as its previous value): a guess, "
                    "not a measured effect")
    assert _beyond_history(entry, SimpleNamespace(plan=[(None, {"feat": 0.9, "price": 2.0}, 0)])) is None
    # a price is read by its own period only: the note does not say the next one moves
    assert _beyond_history(entry, SimpleNamespace(plan=[(None, {"price": 9.0}, 0)])) == (
        "planned price 9 beyond this series' history (price 2..3): the model has no evidence there (its answer "
        "extends what it saw): a guess, not a measured effect")
