"""Configuration, read once from the environment (SPEC §3).

Nothing else in oomguard reads ``os.environ``: callers pass the mapping, so
tests hand in a plain dict.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = ["Config", "parse_bytes"]

_PREFIX = "OOMGUARD_"
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_bytes(text: str) -> int:
    """Parse a byte size such as ``2GiB``, ``500MB``, ``1048576``.

    Raises:
        ValueError: the text is not a size.
    """
    match = _BYTES_RE.match(text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a byte size: {text!r} (use e.g. 2GiB, 500MB, 1048576)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _split_addr(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("expected host:port, e.g. 127.0.0.1:9465")
    return host.strip("[]"), int(port_text)


def is_loopback(host: str) -> bool:
    """True when ``host`` only listens on this machine (``localhost``, 127/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Config:
    """Every knob of the agent; see SPEC §3 for the environment variables."""

    enabled: bool = True
    dump_dir: Path = Path("./oomguard-dumps")
    interval: float = 1.0
    arm_at: float = 0.80
    dump_at: float = 0.90
    admin_addr: tuple[str, int] | None = None
    admin_token: str | None = None
    max_dumps: int = 20
    max_dump_bytes: int = 2 * 1024**3
    log_level: str = "WARNING"
    dump_signal: signal.Signals | None = signal.SIGUSR2
    timeline_size: int = 3600

    def __post_init__(self) -> None:
        checks: list[tuple[str, object, bool, str]] = [
            ("INTERVAL", self.interval, 0.01 <= self.interval <= 3600, "between 0.01 and 3600"),
            ("ARM_AT", self.arm_at, 0.0 < self.arm_at < 1.0, "a fraction between 0 and 1"),
            ("DUMP_AT", self.dump_at, 0.0 < self.dump_at <= 1.0, "a fraction between 0 and 1"),
            ("DUMP_AT", self.dump_at, self.dump_at > self.arm_at, "greater than OOMGUARD_ARM_AT"),
            ("MAX_DUMPS", self.max_dumps, self.max_dumps >= 1, "at least 1"),
            ("MAX_DUMP_BYTES", self.max_dump_bytes, self.max_dump_bytes > 0, "positive"),
            ("TIMELINE", self.timeline_size, self.timeline_size >= 10, "at least 10"),
            (
                "LOG_LEVEL",
                self.log_level,
                self.log_level in _LOG_LEVELS,
                "one of " + ", ".join(_LOG_LEVELS),
            ),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{_PREFIX}{name}={value!r} is invalid: must be {expected}")
        if self.admin_addr is not None and not is_loopback(self.admin_addr[0]) and not self.admin_token:
            host, port = self.admin_addr
            raise ConfigError(
                f"{_PREFIX}ADMIN_ADDR={host}:{port} is not a loopback address: "
                f"set {_PREFIX}ADMIN_TOKEN or {_PREFIX}ADMIN_TOKEN_FILE"
            )

    def replace(self, **changes: object) -> Config:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Config:
        """Build a Config from ``OOMGUARD_*`` variables.

        Raises:
            ConfigError: a variable has a bad value; the message names it and the value.
        """
        env = {k[len(_PREFIX) :]: v for k, v in environ.items() if k.startswith(_PREFIX)}

        def get(name: str, parse: type[float] | type[int], default: float) -> float:
            text = env.get(name)
            if text is None or text.strip() == "":
                return default
            try:
                return parse(text.strip())
            except ValueError:
                raise ConfigError(f"{_PREFIX}{name}={text!r} is not a valid {parse.__name__}") from None

        def get_bytes(name: str, default: int) -> int:
            text = env.get(name)
            if text is None or text.strip() == "":
                return default
            try:
                return parse_bytes(text)
            except ValueError as exc:
                raise ConfigError(f"{_PREFIX}{name}={text!r}: {exc}") from None

        enabled_text = env.get("ENABLED", "1").strip().lower()
        if enabled_text not in _TRUE | _FALSE:
            raise ConfigError(f"{_PREFIX}ENABLED={enabled_text!r} is invalid: use 1 or 0")

        admin_addr = None
        if env.get("ADMIN_ADDR", "").strip():
            try:
                admin_addr = _split_addr(env["ADMIN_ADDR"].strip())
            except ValueError as exc:
                raise ConfigError(f"{_PREFIX}ADMIN_ADDR={env['ADMIN_ADDR']!r}: {exc}") from None

        token = env.get("ADMIN_TOKEN") or None
        token_file = env.get("ADMIN_TOKEN_FILE")
        if token_file:
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(f"{_PREFIX}ADMIN_TOKEN_FILE={token_file!r} cannot be read: {exc.strerror}") from None
            if token is None:
                raise ConfigError(f"{_PREFIX}ADMIN_TOKEN_FILE={token_file!r} is empty")

        dump_signal: signal.Signals | None = signal.SIGUSR2
        sig_text = env.get("DUMP_SIGNAL", "").strip().upper()
        if sig_text in {"0", "NONE", "OFF"}:
            dump_signal = None
        elif sig_text:
            name = sig_text if sig_text.startswith("SIG") else "SIG" + sig_text
            try:
                dump_signal = signal.Signals[name]
            except KeyError:
                raise ConfigError(f"{_PREFIX}DUMP_SIGNAL={env['DUMP_SIGNAL']!r} is not a signal name") from None

        level = env.get("LOG_LEVEL", "WARNING").strip().upper()
        if level.isdigit():
            level = logging.getLevelName(int(level))

        return cls(
            enabled=enabled_text in _TRUE,
            dump_dir=Path(env.get("DUMP_DIR", "").strip() or "./oomguard-dumps"),
            interval=get("INTERVAL", float, 1.0),
            arm_at=get("ARM_AT", float, 0.80),
            dump_at=get("DUMP_AT", float, 0.90),
            admin_addr=admin_addr,
            admin_token=token,
            max_dumps=int(get("MAX_DUMPS", int, 20)),
            max_dump_bytes=get_bytes("MAX_DUMP_BYTES", 2 * 1024**3),
            log_level=level,
            dump_signal=dump_signal,
            timeline_size=int(get("TIMELINE", int, 3600)),
        )
