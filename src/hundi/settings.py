"""What every settings resolver shares (the collector's :mod:`hundi.config`, venue credentials,
the Cassandra and KairosDB stores, the API): the error type, dotenv reading and value parsers.

It imports nothing of hundi, so any layer can use it: :mod:`hundi.config` itself sits higher
(its feed lists know the derived series), and the venues below it read their credentials
through this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values


class ConfigError(Exception):
    """A setting or config file is invalid; the message is the whole user-facing explanation."""


def positive_int(text: str) -> int:
    """An integer above 0; ``ValueError`` otherwise."""
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (NaN and infinity refused); ``ValueError`` otherwise."""
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError(text)
    return value


def read_env_file(path: Path) -> dict[str, str]:
    """A dotenv file's assignments ({} when it does not exist).

    The error names the file and the failure's type only: the content may hold secrets."""
    if not path.is_file():
        return {}
    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {type(exc).__name__}") from None
    return {key: value for key, value in values.items() if value is not None}


def env_with_files(
    *file_names: str, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> dict[str, str]:
    """The process environment over dotenv files in ``cwd`` (later files win over earlier).

    For settings of one component kept in its own files (e.g. ``.cassandra.env`` and a
    ``.secret.cassandra.env`` that is never committed): same precedence as ``.hundi.env``.
    """
    merged: dict[str, str] = {}
    for name in file_names:
        merged.update(read_env_file((cwd or Path.cwd()) / name))
    merged.update(os.environ if environ is None else environ)
    return merged
