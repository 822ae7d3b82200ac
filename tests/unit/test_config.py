from __future__ import annotations

import signal
from pathlib import Path

import pytest

from oomguard import Config, ConfigError
from oomguard.config import parse_bytes


def test_defaults_match_the_spec() -> None:
    config = Config.from_env({})
    assert config.enabled
    assert config.dump_dir == Path("./oomguard-dumps")
    assert config.interval == 1.0
    assert (config.arm_at, config.dump_at) == (0.80, 0.90)
    assert config.admin_addr is None
    assert (config.max_dumps, config.max_dump_bytes) == (20, 2 * 1024**3)
    assert config.log_level == "WARNING"
    assert config.dump_signal is signal.SIGUSR2


def test_reads_every_variable(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    config = Config.from_env(
        {
            "OOMGUARD_ENABLED": "0",
            "OOMGUARD_DUMP_DIR": "/dumps",
            "OOMGUARD_INTERVAL": "0.25",
            "OOMGUARD_ARM_AT": "0.7",
            "OOMGUARD_DUMP_AT": "0.95",
            "OOMGUARD_ADMIN_ADDR": "0.0.0.0:9465",
            "OOMGUARD_ADMIN_TOKEN_FILE": str(token_file),
            "OOMGUARD_MAX_DUMPS": "3",
            "OOMGUARD_MAX_DUMP_BYTES": "500MiB",
            "OOMGUARD_LOG_LEVEL": "debug",
            "OOMGUARD_DUMP_SIGNAL": "USR1",
            "UNRELATED": "x",
        }
    )
    assert not config.enabled
    assert config.dump_dir == Path("/dumps")
    assert config.interval == 0.25
    assert (config.arm_at, config.dump_at) == (0.7, 0.95)
    assert config.admin_addr == ("0.0.0.0", 9465)
    assert config.admin_token == "s3cret"
    assert config.max_dumps == 3
    assert config.max_dump_bytes == 500 * 1024**2
    assert config.log_level == "DEBUG"
    assert config.dump_signal is signal.SIGUSR1


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"OOMGUARD_INTERVAL": "fast"}, ["OOMGUARD_INTERVAL", "'fast'"]),
        ({"OOMGUARD_INTERVAL": "0"}, ["OOMGUARD_INTERVAL", "0.0"]),
        ({"OOMGUARD_ARM_AT": "1.5"}, ["OOMGUARD_ARM_AT", "1.5"]),
        ({"OOMGUARD_ARM_AT": "0.95", "OOMGUARD_DUMP_AT": "0.9"}, ["OOMGUARD_DUMP_AT", "ARM_AT"]),
        ({"OOMGUARD_ENABLED": "maybe"}, ["OOMGUARD_ENABLED", "'maybe'"]),
        ({"OOMGUARD_MAX_DUMP_BYTES": "lots"}, ["OOMGUARD_MAX_DUMP_BYTES", "'lots'"]),
        ({"OOMGUARD_MAX_DUMPS": "0"}, ["OOMGUARD_MAX_DUMPS", "0"]),
        ({"OOMGUARD_ADMIN_ADDR": "9465"}, ["OOMGUARD_ADMIN_ADDR", "'9465'", "host:port"]),
        ({"OOMGUARD_ADMIN_ADDR": "0.0.0.0:9465"}, ["OOMGUARD_ADMIN_ADDR", "ADMIN_TOKEN"]),
        (
            {"OOMGUARD_ADMIN_TOKEN_FILE": "/nonexistent/t"},
            ["OOMGUARD_ADMIN_TOKEN_FILE", "/nonexistent/t"],
        ),
        ({"OOMGUARD_LOG_LEVEL": "LOUD"}, ["OOMGUARD_LOG_LEVEL", "'LOUD'"]),
        ({"OOMGUARD_DUMP_SIGNAL": "SIGNOPE"}, ["OOMGUARD_DUMP_SIGNAL", "SIGNOPE"]),
    ],
)
def test_bad_values_name_the_variable_and_value(env: dict[str, str], names: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env(env)
    for name in names:
        assert name in str(info.value)


def test_loopback_admin_needs_no_token() -> None:
    assert Config.from_env({"OOMGUARD_ADMIN_ADDR": "127.0.0.1:0"}).admin_addr == ("127.0.0.1", 0)
    assert Config.from_env({"OOMGUARD_ADMIN_ADDR": "[::1]:9465"}).admin_addr == ("::1", 9465)


def test_signal_can_be_turned_off() -> None:
    assert Config.from_env({"OOMGUARD_DUMP_SIGNAL": "off"}).dump_signal is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1048576", 1048576),
        ("2GiB", 2 * 1024**3),
        ("500MB", 500 * 1000**2),
        ("1.5 KiB", 1536),
        ("7b", 7),
    ],
)
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1 parsec", "GiB"])
def test_parse_bytes_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a byte size"):
        parse_bytes(text)
