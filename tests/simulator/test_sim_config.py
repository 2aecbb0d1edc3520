from __future__ import annotations

import pytest

from hundi.simulator.binance.config import FaultKind, FaultSpec, FaultSpecError, SimulatorConfig


def test_fault_specs_parse_kind_and_parameter() -> None:
    assert FaultSpec.parse("gap:5") == FaultSpec(FaultKind.GAP, 5.0)
    assert FaultSpec.parse("stale-snapshot") == FaultSpec(FaultKind.STALE_SNAPSHOT, None)
    assert FaultSpec.parse("slow-reader:65536").param == 65536
    assert str(FaultSpec.parse("rest-429:2")) == "rest-429:2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gapp:1", "unknown fault"),
        ("gap", "needs a parameter"),
        ("gap:x", "not a number"),
        ("disconnect:0", "must be > 0"),
    ],
)
def test_bad_fault_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        FaultSpec.parse(text)


def test_config_normalises_symbols_and_rejects_nonsense() -> None:
    assert SimulatorConfig(symbols=(" btcusdt", "ethusdt ")).symbols == ("BTCUSDT", "ETHUSDT")
    with pytest.raises(ValueError, match="rate"):
        SimulatorConfig(rate=-1)
    with pytest.raises(ValueError, match="replay file not found"):
        SimulatorConfig(replay=("/nonexistent/capture",))  # type: ignore[arg-type]
