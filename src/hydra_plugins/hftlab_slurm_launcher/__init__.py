"""hftlab's ``slurm`` Hydra launcher (``hydra/launcher=slurm``): SLURM job arrays, each job collected itself."""
