"""Credentials come from the environment or ``.secret.<venue>.env`` and never show themselves."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from hundi.exchanges.credentials import (
    CredentialError,
    Secret,
    load_credentials,
    require_credentials,
)

KEY, SECRET = "k3y-VALUE-123", "s3cret-VALUE-456"


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / ".secret.binance.env").write_text("BINANCE_API_KEY=filekey\nBINANCE_API_SECRET=x\n")
    env = {"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET}
    found = load_credentials("binance", environ=env, cwd=tmp_path)
    assert found is not None and found.values() == (KEY, SECRET)
    assert found.source == "environment"


def test_secret_file_is_read_when_the_environment_has_none(tmp_path: Path) -> None:
    (tmp_path / ".secret.bitfinex.env").write_text(
        f"# comment\nBITFINEX_API_KEY={KEY}\nBITFINEX_API_SECRET='{SECRET}'\n"
    )
    found = load_credentials("bitfinex", environ={}, cwd=tmp_path)
    assert found is not None and found.values() == (KEY, SECRET)
    assert found.source == ".secret.bitfinex.env"


def test_nothing_configured_is_none_and_required_is_a_clear_error(tmp_path: Path) -> None:
    assert load_credentials("binance", environ={}, cwd=tmp_path) is None
    with pytest.raises(CredentialError, match=r"BINANCE_API_KEY and BINANCE_API_SECRET.*\.secret"):
        require_credentials("binance", environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    "env",
    [
        {"BINANCE_API_KEY": KEY},
        {"BINANCE_API_SECRET": SECRET},
        {"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": "  "},
    ],
)
def test_half_a_pair_is_an_error_that_names_keys_not_values(
    env: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(CredentialError) as info:
        load_credentials("binance", environ=env, cwd=tmp_path)
    assert "missing" in str(info.value)
    assert KEY not in str(info.value) and SECRET not in str(info.value)


def test_secrets_are_masked_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    found = load_credentials(
        "binance", environ={"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET}
    )
    assert found is not None
    texts = [repr(found), str(found), f"{found.api_secret}", f"{found.api_key!r}", str(Secret(KEY))]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").warning("creds %s %r", found, found.api_secret)
    texts.append(caplog.text)
    for text in texts:
        assert KEY not in text and SECRET not in text
    with pytest.raises(TypeError):
        pickle.dumps(found.api_secret)


def test_an_ed25519_key_file_replaces_the_secret(tmp_path: Path) -> None:
    pem = (
        "-----BEGIN PRIVATE KEY-----\n"
        "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA6rAMcrn9g\n"
        "-----END PRIVATE KEY-----\n"
    )
    (tmp_path / "ed.pem").write_text(pem)
    env = {"BINANCE_API_KEY": KEY, "BINANCE_ED25519_KEY": "ed.pem"}
    found = load_credentials("binance", environ=env, cwd=tmp_path)
    assert found is not None and found.ed25519_pem is not None
    assert found.ed25519_pem.reveal() == pem and found.api_secret.reveal() == ""
    assert "MC4CAQAw" not in repr(found)
    assert any("MC4CAQAw" in value for value in found.values())  # scrubbed like the rest
    with pytest.raises(CredentialError, match="cannot be read"):
        load_credentials(
            "binance", environ={**env, "BINANCE_ED25519_KEY": "nope.pem"}, cwd=tmp_path
        )
    with pytest.raises(CredentialError, match="BINANCE_API_KEY is missing"):
        load_credentials("binance", environ={"BINANCE_ED25519_KEY": "ed.pem"}, cwd=tmp_path)
