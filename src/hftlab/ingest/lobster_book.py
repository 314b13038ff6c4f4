"""The LOBSTER importer's book: orders by id, their FIFO queue at each level and the level quantities,
matched to the orderbook file after every message with the orders and unseen liquidity the messages
do not show (the conventions are in :mod:`hftlab.ingest.lobster`)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from hftlab.errors import DataError
from hftlab.storage.schema import Kind

#: LOBSTER prices are USD × 10,000.
PRICE_SCALE = 10_000
#: The price of an empty level in the orderbook file (negative on the bid side).
DUMMY_PRICE = 9_999_999_999
#: Order ids of unseen liquidity (above every NASDAQ order reference number).
UNSEEN_ID_BASE = 1 << 62
#: (exch_ts, local_ts, kind, side, price, qty, order_id, line) of an ``orders`` row.
Row = tuple[int, int, int, int, float, float, int, int]


@dataclass
class Messages:
    """The message file's columns (times as UTC ns)."""

    exch: np.ndarray
    local: np.ndarray
    kind: np.ndarray
    oid: np.ndarray
    size: np.ndarray
    price: np.ndarray
    direction: np.ndarray


class Book:
    """Orders, their levels' FIFO queues and level quantities; emits canonical rows for every change, and
    matches itself to the orderbook file (see :mod:`hftlab.ingest.lobster`, "What the messages do not show")."""

    def __init__(self, source: str, rows: list[Row]) -> None:
        self.source = source
        self.rows = rows
        self.orders: dict[int, list[int]] = {}  # id -> [side, price, qty]
        self.queues: dict[tuple[int, int], dict[int, None]] = {}
        self.qty: dict[tuple[int, int], int] = {}
        self.prices: dict[int, list[int]] = {1: [], -1: []}  # ascending, levels with quantity
        self.next_unseen = UNSEEN_ID_BASE
        self.stamp = (0, 0, 0)  # exch, local, line
        #: order id -> quantity its later messages remove (kept up to date as messages are applied)
        self.need: dict[int, int] = {}
        #: (side, price) -> [(index of the first message naming it, id, quantity)] of orders a message names
        #: before any submits them, not yet in the book, in naming order
        self.pending: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        self.first_named: dict[int, int] = {}
        self.first_total: dict[tuple[int, int], int] = {}
        #: orders placed in the book before the message that first names them
        self.early: set[int] = set()
        self.stats = {
            "unseen_added": 0,
            "unseen_qty": 0,
            "cancelled_by_book": 0,
            "cancelled_qty": 0,
            "placed_before_named": 0,
            "named_unseen": 0,
        }

    def _emit(self, kind: int, side: int, price: int, qty: int, oid: int) -> None:
        exch, local, line = self.stamp
        self.rows.append((exch, local, kind, side, price / PRICE_SCALE, float(qty), oid, line))

    def _level(self, side: int, price: int, delta: int) -> None:
        key = (side, price)
        before = self.qty.get(key, 0)
        after = before + delta
        if after:
            self.qty[key] = after
            if not before:
                bisect.insort(self.prices[side], price)
        else:
            self.qty.pop(key, None)
            ticks = self.prices[side]
            del ticks[bisect.bisect_left(ticks, price)]

    def add(self, oid: int, side: int, price: int, qty: int) -> None:
        if oid in self.orders:
            raise DataError(
                "duplicate-add", self.source, f"line {self.stamp[2]}", f"order {oid} is already in the book"
            )
        self.orders[oid] = [side, price, qty]
        self.queues.setdefault((side, price), {})[oid] = None
        self._level(side, price, qty)
        self._emit(Kind.ADD, side, price, qty, oid)

    def reduce(self, oid: int, by: int, delete: bool = False) -> None:
        side, price, qty = self.orders[oid]
        left = 0 if delete else qty - by
        if left < 0:
            raise DataError(
                "negative-remaining-quantity",
                self.source,
                f"line {self.stamp[2]}",
                f"order {oid} has {qty} left; the message removes {by}",
            )
        self._level(side, price, left - qty)
        if left:
            self.orders[oid][2] = left
        else:
            del self.orders[oid]
            del self.queues[(side, price)][oid]
        self._emit(Kind.CANCEL, side, price, left, oid)

    def set_level(self, side: int, price: int, target: int) -> None:
        """Make the level hold ``target``. Missing quantity: first the orders that later messages name at
        this level (they rest here already: placed now, ahead of anything that joins later), the rest as
        an unseen order. Extra quantity: cancelled, unseen orders first, then known orders no later
        message names, then orders placed ahead of their naming (they wait to be placed again), then the
        others down to what their later messages remove - latest first."""
        have = self.qty.get((side, price), 0)
        if have < target:
            missing = target - have
            waiting = self.pending.get((side, price), [])
            now = self.stamp[2] - 1
            while waiting and missing > 0:
                first, oid, qty = waiting[0]
                if first <= now or oid in self.orders:  # named already (or placed): nothing to wait for
                    waiting.pop(0)
                    continue
                if qty > missing:
                    break
                waiting.pop(0)
                self.early.add(oid)
                self.stats["placed_before_named"] += 1
                self.add(oid, side, price, qty)
                missing -= qty
            if missing > 0:
                oid = self.next_unseen
                self.next_unseen += 1
                self.stats["unseen_added"] += 1
                self.stats["unseen_qty"] += missing
                self.add(oid, side, price, missing)
            return
        excess = have - target
        queue = list(reversed(self.queues.get((side, price), {})))
        order = [o for o in queue if o >= UNSEEN_ID_BASE]
        order += [o for o in queue if o < UNSEEN_ID_BASE and not self.need.get(o)]
        order += [o for o in queue if o in self.early]
        order += [o for o in queue if o < UNSEEN_ID_BASE and self.need.get(o) and o not in self.early]
        for oid in order:
            if excess <= 0:
                break
            early = oid in self.early
            take = min(excess, self.orders[oid][2] - (0 if early else self.need.get(oid, 0)))
            if take <= 0:
                continue
            if early:  # all of it: it will be placed again, or named at the back of its level
                take = self.orders[oid][2]
                self.early.discard(oid)
                bisect.insort(self.pending.setdefault((side, price), []), (self.first_named[oid], oid, take))
                self.stats["placed_before_named"] -= 1
            elif oid < UNSEEN_ID_BASE:
                self.stats["cancelled_by_book"] += 1
                self.stats["cancelled_qty"] += take
            self.reduce(oid, take)
            excess -= take
        if excess < 0:  # an early order larger than the excess left: the difference is unseen
            self.set_level(side, price, target)

    def plan(self, m: Messages) -> None:
        """What the messages will remove from each order (``need``), and the orders they name before any
        submission: (id, first naming message) -> the quantity they remove over the file (``first_total``),
        waiting by level in naming order (``pending``)."""
        submitted: set[int] = set()
        first: dict[int, int] = {}
        for i, (k, o, q) in enumerate(zip(m.kind.tolist(), m.oid.tolist(), m.size.tolist(), strict=True)):
            if k == 1:
                submitted.add(o)
            elif k in (2, 3, 4):
                self.need[o] = self.need.get(o, 0) + q
                if o not in submitted:
                    first.setdefault(o, i)
                    key = (o, first[o])
                    self.first_total[key] = self.first_total.get(key, 0) + q
                    if k == 3:
                        submitted.add(o)  # deleted: a later message of this id is a new order
        for o, i in sorted(first.items(), key=lambda item: item[1]):
            level = (int(m.direction[i]), int(m.price[i]))
            self.pending.setdefault(level, []).append((i, o, self.first_total[(o, i)]))
            self.first_named[o] = i

    def execute(self, oid: int, side: int, price: int, qty: int) -> None:
        """A visible execution: the FILL row, then the CANCEL stating what the order keeps."""
        self._emit(Kind.FILL, side, price, qty, oid)
        self.reduce(oid, qty)

    def name_unseen(self, oid: int, side: int, price: int, qty: int) -> None:
        """An order a message names that the book does not hold: taken out of its level's unseen quantity
        and added at the back of the level (where it stood is unknown)."""
        self.stats["named_unseen"] += 1
        pool = sum(self.orders[o][2] for o in self.queues.get((side, price), {}) if o >= UNSEEN_ID_BASE)
        if pool:
            self.set_level(side, price, self.qty.get((side, price), 0) - min(pool, qty))
        self.add(oid, side, price, qty)

    def match(self, levels: np.ndarray, n_levels: int) -> None:
        """Make the first ``n_levels`` of each side equal one orderbook row (ask px, ask qty, bid px, bid qty)."""
        for side, col in ((-1, 0), (1, 2)):
            px = levels[col::4]
            sz = levels[col + 1 :: 4]
            real = (np.abs(px) != DUMMY_PRICE) & (sz > 0)
            want = dict(zip(px[real].tolist(), sz[real].tolist(), strict=True))
            ticks = self.prices[side]
            if len(want) == n_levels:  # the file shows n levels: ours within them must agree
                edge = max(want) if side == -1 else min(want)
                shown = (
                    ticks[: bisect.bisect_right(ticks, edge)]
                    if side == -1
                    else ticks[bisect.bisect_left(ticks, edge) :]
                )
            else:  # fewer: the side holds exactly these
                shown = list(ticks)
            for price in shown:
                if price not in want:
                    self.set_level(side, price, 0)
            for price, qty in want.items():
                if self.qty.get((side, price), 0) != qty:
                    self.set_level(side, price, qty)
            for price in [*shown, *want]:
                have = self.qty.get((side, price), 0)
                if have != want.get(price, 0):
                    raise DataError(
                        "book-mismatch",
                        self.source,
                        f"line {self.stamp[2]}",
                        f"after this message the orderbook file shows {want.get(price, 0)} at "
                        f"{price / PRICE_SCALE} on the {'bid' if side == 1 else 'ask'} side, but orders that later "
                        f"messages name hold {have} there: the message and orderbook files disagree",
                    )
