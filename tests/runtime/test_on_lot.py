"""Stored quantities on the lot grid (``state.on_lot``): hand-computed values."""

from __future__ import annotations

import math

import pytest

from hftlab.runtime.runner import contract_of
from hftlab.runtime.state import on_lot_value
from hftlab.venue.config import VenueConfig

snap = on_lot_value


def _contract(lot: float):
    return contract_of(VenueConfig(tick_size=0.1, lot_size=lot, contract_type="linear", contract_size=1.0))


@pytest.mark.parametrize(
    ("lot", "value", "stored"),
    [
        (0.001, sum([0.001] * 10), 0.01),  # 0.010000000000000002
        (0.1, 0.3 - 0.1, 0.2),  # 0.19999999999999998
        (0.005, 0.005 * 3, 0.015),  # 0.015 from three lots of 0.005
        (1.0, 99.99999999997, 100.0),  # whole shares
        (0.001, -3.5e-18, 0.0),  # a flat position after many fills
    ],
)
def test_on_lot_hand_values(lot: float, value: float, stored: float):
    got = snap(_contract(lot), value)
    assert got == stored
    assert math.copysign(1.0, got) == math.copysign(1.0, stored)  # a flat position is +0.0, never -0.0


def test_on_lot_keeps_the_float_sum_of_a_plain_loop_apart():
    """The values a plain float sum produces differ from the stored ones; the snapped value is the decimal."""
    drifted = sum([0.1] * 3)
    assert drifted != 0.3
    assert snap(_contract(0.1), drifted) == 0.3
    assert repr(snap(_contract(0.001), -0.19000000000000003)) == "-0.19"
