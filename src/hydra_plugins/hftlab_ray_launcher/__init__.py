"""hftlab's ``ray_workers`` Hydra launcher (``hydra/launcher=ray_workers``): Ray nodes without a shared filesystem."""
