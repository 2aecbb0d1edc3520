"""Which exchange and config a capture is: through the registry, never a hard-coded venue."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from hundi.capture import infer
from hundi.capture.cli import replay
from hundi.capture.infer import InferenceError, infer_config, infer_exchange
from hundi.exchanges import exchange_names, exchanges
from hundi.exchanges.base import VenueConfig
from hundi.exchanges.registry import Exchange
from hundi.records import Channel


def one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(replay, args)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.mark.parametrize("group", ["BINANCE", "BINANCE_FUTURES"])
def test_recordings_name_their_exchange(recordings_dir: Path, group: str) -> None:
    assert infer_exchange(sorted(recordings_dir.glob(f"{group}.*"))) == "binance"


def test_unclaimed_recordings_ask_for_exchange(tmp_path: Path) -> None:
    recording = tmp_path / "NOBODY.ws.1.0"
    recording.write_text("wss://nobody.invalid/ws <-> 1618677543.367689\n")
    with pytest.raises(InferenceError, match="no registered exchange claims recordings named"):
        infer_exchange([recording])
    output = one_line_error([str(recording), "--store", str(tmp_path / "s")])
    assert f"give --exchange ({', '.join(exchange_names())})" in output


def test_recordings_of_two_exchanges_are_refused(tmp_path: Path, recordings_dir: Path) -> None:
    fake = Exchange(name="other", venue=lambda config: None, recordings=("OTHER",))
    other = tmp_path / "OTHER.ws.1.0"
    other.write_text("wss://other.invalid/ws <-> 1618677543.367689\n")
    known = {**exchanges(), "other": fake}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(infer, "exchanges", lambda: known)
        with pytest.raises(InferenceError, match=r"several exchanges \(binance, other\)"):
            infer_exchange([recordings_dir / "BINANCE.ws.1.0", other])


def test_unknown_exchange_is_one_line(tmp_path: Path, recordings_dir: Path) -> None:
    files = [str(p) for p in sorted(recordings_dir.glob("BINANCE.*"))]
    output = one_line_error([*files, "--store", str(tmp_path / "s"), "--exchange", "nope"])
    assert f"unknown exchange 'nope'; known: {', '.join(exchange_names())}" in output


def test_an_exchange_without_capture_inference_says_so(
    monkeypatch: pytest.MonkeyPatch, recordings_dir: Path
) -> None:
    """Every registered venue infers captures today: a registration without it stands in."""
    bare = Exchange(name="bare", venue=lambda config: None)
    known = {**exchanges(), "bare": bare}
    monkeypatch.setattr(infer, "registered", known.__getitem__)
    files = sorted(recordings_dir.glob("BINANCE.*"))
    with pytest.raises(InferenceError, match="cannot infer a bare configuration from recordings"):
        infer_config(files, "bare", None)


def test_a_new_venue_infers_through_its_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """infer_exchange and infer_config find a venue by its registration alone; its
    ValueError becomes an InferenceError (one line in ``hundi replay``)."""
    seen: list[tuple[list[str], str | None]] = []

    def infer_capture(files: Sequence[Path], market: str | None) -> VenueConfig:
        seen.append(([p.name for p in files], market))
        if market == "bad":
            raise ValueError("the capture is newvenue spot, not bad")
        return VenueConfig(market="spot", symbols=("X/Y",), channels=(Channel.TRADES,))

    fake = Exchange(
        name="newvenue",
        venue=lambda config: None,
        infer_capture=infer_capture,
        recordings=("NEWVENUE",),
    )
    known = {**exchanges(), "newvenue": fake}
    monkeypatch.setattr(infer, "exchanges", lambda: known)
    monkeypatch.setattr(infer, "registered", known.__getitem__)
    recording = tmp_path / "NEWVENUE.ws.1.0"
    recording.write_text("wss://new.invalid/ws <-> 1618677543.367689\n")
    assert infer_exchange([recording]) == "newvenue"
    assert infer_config([recording], "newvenue", None).symbols == ("X/Y",)
    assert seen == [(["NEWVENUE.ws.1.0"], None)]
    with pytest.raises(InferenceError, match="not bad"):
        infer_config([recording], "newvenue", "bad")
