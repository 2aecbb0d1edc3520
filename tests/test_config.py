"""Settings precedence (CLI > env > .hundi.env > YAML > defaults) and clear bad-value errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hundi.config import ConfigError, load_config_file, load_settings, parse_channels
from hundi.records import Channel


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.log_path == Path("./logs/hundi.log")
    assert settings.log_queue_max_size == 10000
    assert settings.log_update_interval == 1.0
    assert settings.log_max_lines == 10
    assert settings.store == ("./data",)
    assert settings.queue_mb == 32
    assert set(settings.sources.values()) == {"default"}


def test_queue_mb_from_the_environment(tmp_path: Path) -> None:
    assert load_settings(environ={"HUNDI_QUEUE_MB": "8"}, cwd=tmp_path).queue_mb == 8


def test_precedence_cli_over_env_over_dotenv_over_yaml(tmp_path: Path) -> None:
    write(tmp_path / ".hundi.env", "HUNDI_LOG_MAX_LINES=3\nHUNDI_FLUSH_INTERVAL=0.5\n")
    config = load_config_file(
        write(
            tmp_path / "c.yaml",
            "settings:\n  log_max_lines: 4\n  flush_interval: 0.25\n  HUNDI_LOG_PATH: y.log\n"
            "  log_update_interval: 7\n",
        )
    )
    settings = load_settings(
        {"flush_interval": 0.1, "store": None},
        environ={"HUNDI_LOG_MAX_LINES": "2", "HUNDI_LOG_UPDATE_INTERVAL": "0.5"},
        cwd=tmp_path,
        config_file=config,
    )
    assert settings.flush_interval == 0.1 and settings.sources["flush_interval"] == "command line"
    assert settings.log_max_lines == 2 and settings.sources["log_max_lines"] == "environment"
    assert settings.log_update_interval == 0.5
    assert settings.log_path == Path("y.log") and settings.sources["log_path"] == "config file"

    settings = load_settings(environ={}, cwd=tmp_path, config_file=config)
    assert settings.log_max_lines == 3 and settings.sources["log_max_lines"] == ".hundi.env"
    assert settings.flush_interval == 0.5


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("HUNDI_LOG_QUEUE_MAX_SIZE", "abc", "must be a positive integer"),
        ("HUNDI_LOG_QUEUE_MAX_SIZE", "0", "must be a positive integer"),
        ("HUNDI_LOG_MAX_LINES", "-3", "must be a positive integer"),
        ("HUNDI_LOG_UPDATE_INTERVAL", "0", "must be a positive number of seconds"),
        ("HUNDI_LOG_UPDATE_INTERVAL", "nan", "must be a positive number of seconds"),
        ("HUNDI_FLUSH_INTERVAL", "soon", "must be a positive number of seconds"),
        ("HUNDI_STORE", ",", "must be comma-separated store URLs"),
        ("HUNDI_WS_CLIENT", "curl", "must be 'picows' or 'aiohttp'"),
        ("HUNDI_QUEUE_MB", "0", "must be a positive integer (MiB)"),
    ],
)
def test_bad_values_name_key_form_and_origin(
    tmp_path: Path, key: str, value: str, expected: str
) -> None:
    write(tmp_path / ".hundi.env", f"{key}={value}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(environ={}, cwd=tmp_path)
    assert str(error.value) == f"{key} {expected}, got {value!r} (from .hundi.env)"
    with pytest.raises(ConfigError, match=r"\(from environment\)"):
        load_settings(environ={key: value}, cwd=tmp_path)


def test_yaml_feeds(tmp_path: Path) -> None:
    config = load_config_file(
        write(
            tmp_path / "feeds.yaml",
            """
feeds:
  - exchange: Binance
    market: usdm
    symbols: [btcusdt, ETHUSDT]
    channels: trades,book
    endpoint: ws://127.0.0.1:9/
    stores: [./a, ./b]
    options: {depth_limit: 100}
  - exchange: binance
    symbols: BTCUSDT
    channels: [bbo]
""",
        )
    )
    first, second = config.feeds
    assert first.exchange == "binance" and first.market == "usdm"
    assert first.symbols == ("BTCUSDT", "ETHUSDT")
    assert first.channels == (Channel.TRADES, Channel.BOOK)
    assert first.stores == ("./a", "./b") and first.options == {"depth_limit": "100"}
    assert second.market == "spot" and second.stores == () and second.channels == (Channel.BBO,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- 1\n", "must be a mapping"),
        ("feeds: {}\n", "'feeds' must be a list"),
        (
            "feeds:\n  - exchange: binance\n    channels: trades\n",
            r"feeds\[0\].symbols is required",
        ),
        (
            "feeds:\n  - {exchange: binance, symbols: X, channels: trades, colour: red}\n",
            "unknown keys",
        ),
        (
            "feeds:\n  - {exchange: binance, symbols: X, channels: depth}\n",
            "unknown channel 'depth'",
        ),
        ("settings: {HUNDI_LOG_SIZE: 3}\n", "unknown settings"),
        ("feeds: [\n", "not valid YAML"),
    ],
)
def test_bad_yaml_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config_file(write(tmp_path / "bad.yaml", text))


def test_bad_yaml_setting_value_names_the_config_file(tmp_path: Path) -> None:
    config = load_config_file(write(tmp_path / "c.yaml", "settings: {log_max_lines: lots}\n"))
    with pytest.raises(ConfigError, match=r"HUNDI_LOG_MAX_LINES .* 'lots' \(from config file\)"):
        load_settings(environ={}, cwd=tmp_path, config_file=config)


def test_channels_parse_and_reject() -> None:
    assert parse_channels("Trades, bbo,trades") == (Channel.TRADES, Channel.BBO)
    with pytest.raises(ConfigError, match="choose from"):
        parse_channels("trades,events")
