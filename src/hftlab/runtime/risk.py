"""Risk: pre-trade limits every wanted order passes, and the kill switch.

Risk sees orders that already satisfy the strategy output contract (:mod:`hftlab.runtime.contract`:
side, price, quantity and time in force are valid) and applies the configured policy. A refused order is
never sent; each refusal is a row of the ``risk`` table (rule, value, limit) and a ``risk_rejected``
lifecycle row. Limits of ``inf`` disable a rule.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hftlab.jit import engine_jit
from hftlab.runtime import records as R
from hftlab.runtime.state import trade_value


class RiskLimits(NamedTuple):
    """Risk policy as the compiled loop reads it (from :class:`hftlab.runtime.config.RiskConfig`)."""

    max_position: float
    max_order_qty: float
    max_notional: float  #: trade value of one order in the account currency
    price_band: float  #: largest |price - mid| / mid
    max_open_orders: float
    max_drawdown: float  #: kill when equity falls this far below its peak
    max_loss: float  #: kill when equity falls this far below its start
    flatten_on_kill: bool


@engine_jit(forceinline=True)
def _rule(account, contract, limits, side, price, qty, mid, buy_total, sell_total, n_open):
    """The first Risk rule a wanted order breaks (0: none), the value compared and the limit."""
    if account.killed:
        return R.RULE_KILL_SWITCH, 0.0, 0.0
    if qty > limits.max_order_qty:
        return R.RULE_MAX_ORDER_QTY, qty, limits.max_order_qty
    value = trade_value(contract, price, qty)
    if value > limits.max_notional:
        return R.RULE_MAX_NOTIONAL, value, limits.max_notional
    if np.isfinite(limits.price_band):
        if not np.isfinite(mid):
            return R.RULE_NO_MID, 0.0, 0.0
        band = abs(price - mid) / mid
        if band > limits.price_band:
            return R.RULE_PRICE_BAND, band, limits.price_band
    # half a lot of slack absorbs float sums of lot multiples (0.1 + 0.2 > 0.3)
    slack = 0.5 * contract.lot_size
    if side > 0 and account.position + buy_total + qty > limits.max_position + slack:
        return R.RULE_MAX_POSITION, account.position + buy_total + qty, limits.max_position
    if side < 0 and -(account.position - sell_total - qty) > limits.max_position + slack:
        return R.RULE_MAX_POSITION, -(account.position - sell_total - qty), limits.max_position
    if n_open + 1 > limits.max_open_orders:
        return R.RULE_MAX_OPEN_ORDERS, float(n_open + 1), limits.max_open_orders
    return 0, 0.0, 0.0


@engine_jit(forceinline=True)
def check_wanted(account, contract, limits, orders, n_wanted, mid, now, rec):
    """Check every wanted order; set ``orders.accepted[i]`` and ``orders.rules[i]`` (0 = passed); record
    each refusal. Returns how many passed.

    Position limits count the position plus every accepted wanted order on the same side (wanted orders
    replace working ones), so the limit holds if all of them fill.
    """
    buy_total = 0.0
    sell_total = 0.0
    n_open = 0
    wanted = orders.wanted
    for i in range(n_wanted):
        side = wanted[i, 0]
        price = wanted[i, 1]
        qty = wanted[i, 2]
        rule, value, limit = _rule(account, contract, limits, side, price, qty, mid, buy_total, sell_total, n_open)
        orders.rules[i] = rule
        orders.accepted[i] = rule == 0
        if rule == 0:
            n_open += 1
            if side > 0:
                buy_total += qty
            else:
                sell_total += qty
        else:
            R.record_check(rec, R.RISK, now, 0, rule, np.int8(side), price, qty, value, limit)
            R.record_order(rec, now, 0, 0, R.RISK_REJECTED, np.int8(side), price, qty, qty, rule)
    return n_open


@engine_jit(forceinline=True)
def kill_check(account, limits):
    """True once, when equity breaks the drawdown or loss limit (the kill switch fires)."""
    if account.killed:
        return False
    if account.peak_equity - account.equity > limits.max_drawdown or -account.equity > limits.max_loss:
        account.killed = True
        return True
    return False
