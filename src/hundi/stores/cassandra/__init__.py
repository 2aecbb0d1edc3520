"""The Apache Cassandra store (URL scheme ``cassandra``): lossless, idempotent tick tables."""

from hundi.stores.cassandra.store import CassandraStore

__all__ = ["CassandraStore"]
