"""Files ``hftlab`` writes for you: ``strategy.py`` is what ``hftlab strategy new NAME`` copies to
``strategies/NAME.py`` (a complete, runnable strategy; its docstring is the strategy contract)."""
