"""strategies/_quotes.py: the quote emission glft and obi share, and how the loader serves and hashes it."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from hftlab.runtime.strategy import load_strategy, local_imports, source_key
from tests.conftest import PROJECT_ROOT

STRATEGIES = PROJECT_ROOT / "strategies"
OBI = load_strategy("obi", STRATEGIES)
post_quotes = OBI.module.post_quotes  # compiled (or plain Python under NUMBA_DISABLE_JIT)


def emitted(rows: int = 4, bid: float = 999.0, ask: float = 1003.0, position: float = 0.0, max_position: float = 1.0):
    """(side, price, qty, tif) rows post_quotes writes: ticks of 0.1, order_qty 0.1."""
    out = np.zeros((rows, 4))
    n = post_quotes(out, bid, ask, 0.1, 0.1, position, max_position)
    return [tuple(row) for row in out[:n].tolist()]


def test_post_quotes_writes_a_post_only_bid_then_ask():
    assert [(1.0, 999.0 * 0.1, 0.1, 1.0), (-1.0, 1003.0 * 0.1, 0.1, 1.0)] == emitted()


def test_post_quotes_skips_a_side_its_fill_would_push_past_max_position():
    assert [-1.0] == [row[0] for row in emitted(position=1.0)]
    assert [1.0] == [row[0] for row in emitted(position=-0.95)]
    assert [1.0, -1.0] == [row[0] for row in emitted(position=0.1 + 0.2 + 0.6)]  # 0.9000000000000001: within slack


def test_post_quotes_skips_prices_below_one_tick_and_stops_at_out_rows():
    assert [-1.0] == [row[0] for row in emitted(bid=0.0)]
    assert [1.0] == [row[0] for row in emitted(ask=0.0)]
    assert [1.0] == [row[0] for row in emitted(rows=1)]
    assert [] == emitted(rows=0)


@pytest.fixture(autouse=True)
def _originals_stay_loaded():
    """A strategy loaded from a copy takes the module names numba looks modules up by: give them back."""
    saved = {name: module for name, module in sys.modules.items() if name.startswith("hftlab_strategy_")}
    yield
    for name in [name for name in sys.modules if name.startswith("hftlab_strategy_")]:
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """A copy of strategies/ to edit."""
    folder = tmp_path / "strategies"
    shutil.copytree(STRATEGIES, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_editing_the_helper_changes_the_source_key_of_the_strategies_importing_it(copied: Path):
    """_quotes.py is part of what glft and obi compile to (their run definitions list it); grid's key stays."""
    helper = copied / "_quotes.py"
    for name in ("glft", "obi"):
        assert ["_quotes.py"] == list(local_imports(copied / f"{name}.py", copied))
    assert {} == local_imports(copied / "grid.py", copied)
    before = {name: source_key(copied / f"{name}.py") for name in ("glft", "obi", "grid")}
    assert before == {name: source_key(STRATEGIES / f"{name}.py") for name in before}  # a copy hashes the same
    helper.write_text(helper.read_text() + "\n# edited\n")
    after = {name: source_key(copied / f"{name}.py") for name in before}
    assert after["glft"] != before["glft"]
    assert after["obi"] != before["obi"]
    assert after["grid"] == before["grid"]
    assert load_strategy("glft", copied).source_key == after["glft"]


def test_a_strategy_gets_the_helper_of_its_own_folder_whatever_holds_its_name(copied: Path, monkeypatch):
    """The helper is executed afresh from the strategy's folder (here an edited copy: tif 0) even with another
    module imported as ``_quotes``, which is given back afterwards; the helper stays importable by the
    strategy-qualified name numba reloads cached code under."""
    helper = copied / "_quotes.py"
    text = helper.read_text()
    assert text.count("GTX = 1.0") == 1
    helper.write_text(text.replace("GTX = 1.0", "GTX = 0.0"))
    shutil.copy(copied / "obi.py", copied / "obi_edited.py")
    other = types.ModuleType("_quotes")
    monkeypatch.setitem(sys.modules, "_quotes", other)

    edited = load_strategy("obi_edited", copied)

    assert sys.modules["_quotes"] is other
    helper_module = sys.modules["hftlab_strategy_obi_edited._quotes"]
    assert edited.module.post_quotes is helper_module.post_quotes
    assert Path(helper_module.__file__) == helper
    run = getattr(edited.module.post_quotes, "py_func", edited.module.post_quotes)  # plain Python: no compile
    out = np.zeros((2, 4))
    assert 2 == run(out, 999.0, 1003.0, 0.1, 0.1, 0.0, 1.0)
    assert [0.0, 0.0] == out[:, 3].tolist()
    assert [(1.0, 999.0 * 0.1, 0.1, 1.0)] == emitted(rows=1)  # the original strategies keep their own helper
