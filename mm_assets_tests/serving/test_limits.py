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
