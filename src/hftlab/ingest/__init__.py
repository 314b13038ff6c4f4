"""Importers and the synthetic market generator: raw inputs -> canonical rows with lineage."""
