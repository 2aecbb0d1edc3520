"""The embedded store (URL scheme ``file``): Parquet files in a directory, zero setup."""

from hundi.stores.embedded.store import EmbeddedStore, path_of_url

__all__ = ["EmbeddedStore", "path_of_url"]
