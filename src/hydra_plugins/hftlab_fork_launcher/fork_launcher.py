"""Where Hydra finds the ``forked`` launcher (Hydra registers plugin classes defined under ``hydra_plugins``).

The implementation lives in :mod:`hftlab.sweep.fork_launcher`: Hydra re-executes the modules under
``hydra_plugins`` when it rescans plugins, which would reset the state the launcher keeps for its workers.
"""

from hftlab.sweep import fork_launcher


class ForkLauncher(fork_launcher.ForkLauncher):
    """See :class:`hftlab.sweep.fork_launcher.ForkLauncher`."""
