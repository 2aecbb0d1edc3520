"""API credentials for authenticated streams: loaded from the environment or a secret file only.

``<VENUE>_API_KEY`` and ``<VENUE>_API_SECRET`` come from the process environment or, failing
that, from ``.secret.<venue>.env`` in the working directory (dotenv syntax; a committed
``.secret.<venue>.env.example`` shows the keys). An asymmetric key pair replaces the secret
with ``<VENUE>_ED25519_KEY``, the path of the PEM private key (read once, at start). Never
from command-line flags or YAML configs: those end up in shell histories, process lists and
summaries.

Values are held in :class:`Secret`, whose ``repr``/``str`` are masked, so a credential that
slips into a log call, an exception message or a dataclass repr shows as ``***``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hundi.settings import ConfigError, read_env_file

MASK = "***"


class CredentialError(ValueError):
    """Credentials are missing or incomplete; the message names keys and files, never values."""


class Secret:
    """A string that never shows itself: ``repr``/``str``/format give ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, for signing and headers only."""
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return MASK

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("secrets are not picklable")


@dataclass(frozen=True, slots=True)
class Credentials:
    """One venue's API key pair; ``source`` says where it came from (for error messages)."""

    venue: str
    api_key: Secret
    api_secret: Secret  # empty with an Ed25519 key
    source: str
    ed25519_pem: Secret | None = None  # the PEM private key, when the key pair is Ed25519

    def values(self) -> tuple[str, ...]:
        """Every raw value, for scrubbing texts and for tests that scan outputs for leaks."""
        found = [self.api_key.reveal(), self.api_secret.reveal()]
        if self.ed25519_pem is not None:
            pem = self.ed25519_pem.reveal()
            found.append(pem)
            # the base64 body lines, which is what a leak would most likely show
            found += [line for line in pem.splitlines() if line and not line.startswith("-")]
        return tuple(v for v in found if v)


REDACTED = b"***"


def redact_values(data: bytes, values: tuple[str, ...]) -> bytes:
    """``data`` with every occurrence of each value replaced by ``***``."""
    for value in values:
        encoded = value.encode()
        if encoded in data:
            data = data.replace(encoded, REDACTED)
    return data


def secret_file_name(venue: str) -> str:
    return f".secret.{venue.lower()}.env"


def load_credentials(
    venue: str,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Credentials | None:
    """The venue's credentials, or None when neither the environment nor the file has any.

    The environment wins as a whole pair; a pair split between the two, or half a pair, is an
    error rather than a silent mix.
    """
    environ = os.environ if environ is None else environ
    prefix = venue.upper()
    key_name, secret_name = f"{prefix}_API_KEY", f"{prefix}_API_SECRET"
    ed_name = f"{prefix}_ED25519_KEY"
    base = cwd or Path.cwd()
    if environ.get(ed_name):
        return _ed25519(venue, environ, key_name, ed_name, "environment", base)
    found = _pair(environ, key_name, secret_name, "the environment")
    if found is not None:
        return Credentials(venue, Secret(found[0]), Secret(found[1]), "environment")
    path = base / secret_file_name(venue)
    if not path.is_file():
        return None
    try:
        values = read_env_file(path)
    except ConfigError as exc:
        raise CredentialError(str(exc)) from None
    if values.get(ed_name):
        return _ed25519(venue, values, key_name, ed_name, path.name, base)
    found = _pair(values, key_name, secret_name, str(path))
    if found is None:
        raise CredentialError(f"{path} has neither {key_name} nor {secret_name}")
    return Credentials(venue, Secret(found[0]), Secret(found[1]), path.name)


def _ed25519(
    venue: str, values: Mapping[str, str], key_name: str, ed_name: str, source: str, base: Path
) -> Credentials:
    """An Ed25519 pair: the API key and the PEM private key file named by ``ed_name``."""
    key = (values.get(key_name) or "").strip()
    if not key:
        raise CredentialError(f"{key_name} is missing or empty ({ed_name} is set in {source})")
    pem_path = base / Path(values[ed_name].strip()).expanduser()
    try:
        pem = pem_path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialError(
            f"{ed_name} names {pem_path}, which cannot be read ({type(exc).__name__})"
        ) from None
    if "PRIVATE KEY" not in pem:
        raise CredentialError(f"{ed_name} names {pem_path}, which is not a PEM private key")
    return Credentials(venue, Secret(key), Secret(""), source, ed25519_pem=Secret(pem))


def _pair(
    values: Mapping[str, str], key_name: str, secret_name: str, where: str
) -> tuple[str, str] | None:
    key = (values.get(key_name) or "").strip()
    secret = (values.get(secret_name) or "").strip()
    if not key and not secret:
        return None
    if not key or not secret:
        missing = key_name if not key else secret_name
        present = secret_name if not key else key_name
        raise CredentialError(f"{missing} is missing or empty ({present} is set in {where})")
    return key, secret


def require_credentials(
    venue: str, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Credentials:
    """Like :func:`load_credentials`, but missing credentials are a configuration error."""
    found = load_credentials(venue, environ=environ, cwd=cwd)
    if found is None:
        prefix = venue.upper()
        raise CredentialError(
            f"authenticated channels (orders, fills) need {prefix}_API_KEY and "
            f"{prefix}_API_SECRET in the environment or in {secret_file_name(venue)}"
        )
    return found
