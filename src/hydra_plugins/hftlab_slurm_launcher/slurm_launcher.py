"""Where Hydra finds the ``slurm`` launcher (Hydra takes launcher classes only from under ``hydra_plugins``).

The implementation lives in :mod:`hftlab.sweep.slurm_launcher`, as the forked launcher's does.
"""

from hftlab.sweep import slurm_launcher


class SlurmLauncher(slurm_launcher.SlurmLauncher):
    """See :class:`hftlab.sweep.slurm_launcher.SlurmLauncher`."""
