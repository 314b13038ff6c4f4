"""hftlab's ``forked`` Hydra launcher (``hydra/launcher=forked``): compile once, then fork workers."""
