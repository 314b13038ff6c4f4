"""Canonical Storage: the normalized schema, validation, promotion and verification of datasets."""

from hftlab.storage.catalog import Catalog, Dataset, default_root
from hftlab.storage.manifest import Manifest, Partition
from hftlab.storage.schema import (
    DEFAULT_FEEDS,
    FEEDS,
    SCHEMA_VERSION,
    FeedFrame,
    IngestResult,
    Instrument,
    Kind,
    Side,
)

__all__ = [
    "DEFAULT_FEEDS",
    "FEEDS",
    "SCHEMA_VERSION",
    "Catalog",
    "Dataset",
    "FeedFrame",
    "IngestResult",
    "Instrument",
    "Kind",
    "Manifest",
    "Partition",
    "Side",
    "default_root",
]
