"""NAME: a symmetric market maker, written by ``hftlab strategy new`` as a starting point. Run it with
``hftlab run strategy=NAME`` (parameters: ``strategy.params.half_spread=0.3``; sweeps: ``-m``).

The strategy contract (``hftlab.runtime.strategy``; the README's "Run" section says more):

- ``Params``: a NamedTuple of int / float / bool fields with defaults; they become ``strategy.params.*``
  config keys, typed and part of every run definition (so of the run id).
- ``validate(params)``: raise ``hftlab.errors.ConfigError`` naming the key for a value that makes no sense;
  called before anything runs.
- ``SCRATCH_SIZE``: length of ``scratch``, a float64 array that keeps its values between evaluations (state
  such as an EWMA); starts as zeros.
- ``evaluate(view, params, scratch, out)``: called at every evaluation point (``runtime.evaluation``). Read
  the market and your own state from ``view`` (``hftlab.runtime.contract.View``: ``ts``, ``best_bid``,
  ``best_ask``, ``mid`` (NaN unless both sides exist), ``tick_size``, ``lot_size``, top levels ``bid_px`` /
  ``bid_qty`` / ``ask_px`` / ``ask_qty`` with ``n_bid`` / ``n_ask``, recent trades ``trade_*`` with
  ``n_trades``, ``position``, ``cash``, ``equity``, ``fees``, your live orders ``order_*`` with
  ``n_orders``). Write the orders you want working into rows of ``out``: ``(side +1 buy / -1 sell, price on
  the tick grid, quantity a multiple of the lot, time in force 0 GTC / 1 GTX post-only / 2 FOK / 3 IOC)``
  and return how many rows you wrote. The runtime keeps matching orders, cancels the others and sends the
  new ones through Risk and Execution Control. Output that breaks these rules stops the run naming the
  rule and the row.
- Plain Python or ``@njit``: the runtime compiles ``evaluate`` itself (with bounds checks). Debug it as
  plain Python with ``hftlab run strategy=NAME runtime.debug=true dataset.end=...`` and ``breakpoint()``.
- Unit-test it on a crafted book with ``hftlab.runtime.strategy.make_view``::

      from hftlab.runtime.strategy import load_strategy, make_view
      s = load_strategy("NAME")
      out = numpy.zeros((64, 4))
      n = s.module.evaluate(make_view(bids=[(99.9, 1.0)], asks=[(100.1, 1.0)]), s.module.Params(), numpy.zeros(1), out)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hftlab.errors import ConfigError

SCRATCH_SIZE = 0
GTX = 1.0  # post-only: never takes liquidity


class Params(NamedTuple):
    half_spread: float = 0.2  #: distance of each quote from the mid, in price units
    order_qty: float = 0.01  #: quantity of each quote (a multiple of the lot size)
    max_position: float = 0.1  #: no more buying above it, no more selling below its negative


def validate(p: Params) -> None:
    """Invariants, named by key."""
    for key in ("half_spread", "order_qty", "max_position"):
        value = getattr(p, key)
        if not (np.isfinite(value) and value > 0):
            raise ConfigError(f"strategy.params.{key}: must be a finite number > 0, got {value}")


@njit(cache=True)
def evaluate(view, params, scratch, out):
    if not np.isfinite(view.mid):
        return 0  # no two-sided book yet: quote nothing
    n = 0
    if view.position < params.max_position:
        out[n, 0] = 1.0
        out[n, 1] = np.floor((view.mid - params.half_spread) / view.tick_size + 1e-9) * view.tick_size
        out[n, 2] = params.order_qty
        out[n, 3] = GTX
        n += 1
    if view.position > -params.max_position:
        out[n, 0] = -1.0
        out[n, 1] = np.ceil((view.mid + params.half_spread) / view.tick_size - 1e-9) * view.tick_size
        out[n, 2] = params.order_qty
        out[n, 3] = GTX
        n += 1
    return n
