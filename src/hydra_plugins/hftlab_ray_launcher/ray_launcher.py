"""Where Hydra finds the ``ray_workers`` launcher (Hydra takes launcher classes only from under ``hydra_plugins``).

The implementation lives in :mod:`hftlab.sweep.ray_launcher`, as the other hftlab launchers' do.
"""

from hftlab.sweep import ray_launcher


class RayWorkersLauncher(ray_launcher.RayWorkersLauncher):
    """See :class:`hftlab.sweep.ray_launcher.RayWorkersLauncher`."""
