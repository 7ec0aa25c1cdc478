"""Units as operators write them: speeds (`50Mbit`, `1Gbit/s`, `100MB/s`), sizes (`16MiB`) and
durations (`20ms`) and
shares (`0.1%`, a WAN link's packet loss).

Rules:
- A lowercase `b` or the word `bit` means bits, an uppercase `B` means bytes: `50Mb` is 50 megabits,
  `50MB` 50 megabytes. `Mbps` is megabits per second, as people use it.
- `k M G T` are powers of 1000, `Ki Mi Gi Ti` powers of 1024.
- A bare number is an error: `50` could be bits or bytes, kilo or mega. The error says what to write.
- Speeds must be above zero; durations may be zero, not negative.

- Sizes have one grammar in the whole product, here: the site-tree file and every command-line
  option (`--chunk-size`, `--demo-data`) read `16MiB` as 16 x 2**20 bytes and `16MB` as 16 x 10**6;
  a bare prefix (`16M`) is an error naming both readings. Sizes print through
  `lanscatter.core.sizes.format_bytes` (binary units), speeds through `format_bits_per_s`.

Parsers raise `UnitError(code, message)`; the loader turns it into a positioned problem.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")

_DECIMAL = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_BINARY = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
_PREFIXES = {**_DECIMAL, **_BINARY}


def _speed_units() -> dict[str, float]:
    """Unit spelling -> bytes per second for one unit."""
    units: dict[str, float] = {}
    for prefix, factor in _PREFIXES.items():
        for suffix in ("b", "b/s", "bps"):
            units[prefix + suffix] = factor / 8
        for suffix in ("B", "B/s", "Bps"):
            units[prefix + suffix] = factor
        # The word "bit" is unambiguous, so its prefix may be written in any case (tc writes "mbit").
        for suffix in ("bit", "bit/s", "bits", "bits/s"):
            units[(prefix + suffix).lower()] = factor / 8
    return units


_SPEED_UNITS = _speed_units()
_SIZE_UNITS = {prefix + "B": int(factor) for prefix, factor in _PREFIXES.items()}
_DURATION_UNITS = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "min": 60.0}

_SPEED_EXAMPLES = ("kbit", "Mbit", "Gbit", "Mbit/s", "Gbit/s", "kB/s", "MB/s", "GB/s", "MiB/s", "GiB/s")
_SIZE_EXAMPLES = ("B", "kB", "KiB", "MB", "MiB", "GB", "GiB")


class UnitError(ValueError):
    """A value that does not read as the expected unit; `code` is the problem code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _split(text: str, what: str, code: str) -> tuple[float, str]:
    match = _NUMBER.match(text)
    if not match:
        raise UnitError(code, f"{text!r} is not a {what}")
    return float(match.group(1)), match.group(2)


def _did_you_mean(unit: str, known: tuple[str, ...]) -> str:
    return did_you_mean(unit, known) or f"; use one of {', '.join(known)}"


def parse_speed(text: str) -> float:
    """`50Mbit` -> 6_250_000.0 bytes per second."""
    number, unit = _split(text, "speed", "bad-speed")
    if not unit:
        raise UnitError(
            "unit-missing",
            f"speed {text!r} has no unit; write e.g. '{text}Mbit' (bits) or '{text}MB/s' (bytes)",
        )
    factor = _SPEED_UNITS.get(unit)
    if factor is None and "bit" in unit.lower():
        factor = _SPEED_UNITS.get(unit.lower())
    if factor is None:
        if unit in _SIZE_UNITS or unit.lower() in ("s", "ms"):
            raise UnitError("bad-unit", f"{unit!r} is not a speed unit{_did_you_mean(unit, _SPEED_EXAMPLES)}")
        raise UnitError("bad-unit", f"unknown speed unit {unit!r}{_did_you_mean(unit, _SPEED_EXAMPLES)}")
    value = number * factor
    if value <= 0:
        raise UnitError("bad-speed", f"speed {text!r} must be above zero")
    return value


def parse_size(text: str) -> int:
    """`16MiB` -> 16_777_216 bytes. Sizes are whole bytes."""
    number, unit = _split(text, "size", "bad-size")
    if not unit:
        raise UnitError("unit-missing", f"size {text!r} has no unit; write e.g. '{text}MiB' or '{text}MB'")
    factor = _SIZE_UNITS.get(unit)
    if factor is None and unit + "B" in _SIZE_UNITS:
        base = unit.removesuffix("i")
        binary = "Ki" if base in ("k", "K") else base + "i"
        raise UnitError("bad-unit", f"size {text!r} is ambiguous; write '{number:g}{binary}B' (powers of 1024) "
                        f"or '{number:g}{base}B' (powers of 1000)")
    if factor is None:
        hint = "; sizes are in bytes (B)" if unit.lower().endswith(("b", "bit")) else ""
        raise UnitError("bad-unit", f"unknown size unit {unit!r}{hint}{_did_you_mean(unit, _SIZE_EXAMPLES)}")
    value = number * factor
    if value <= 0 or value != int(value):
        raise UnitError("bad-size", f"size {text!r} must be a whole number of bytes above zero")
    return int(value)


def parse_duration(text: str) -> float:
    """`20ms` -> 0.02 seconds."""
    number, unit = _split(text, "duration", "bad-duration")
    if not unit:
        raise UnitError("unit-missing", f"duration {text!r} has no unit; write e.g. '{text}ms' or '{text}s'")
    factor = _DURATION_UNITS.get(unit)
    if factor is None:
        raise UnitError("bad-unit", f"unknown duration unit {unit!r}{_did_you_mean(unit, ('ms', 's', 'us'))}")
    if number < 0:
        raise UnitError("bad-duration", f"duration {text!r} must not be negative")
    return number * factor


def parse_share(text: str) -> float:
    """`0.5%` -> 0.005: a share of packets, written as a percentage below 100."""
    number, unit = _split(text, "percentage", "bad-value")
    if not unit:
        raise UnitError("unit-missing",
                        f"share {text!r} has no unit; write it as a percentage, e.g. '{text}%'")
    if unit != "%":
        raise UnitError("bad-unit", f"unknown unit {unit!r}; write a share as a percentage, e.g. '0.1%'")
    if not 0 <= number < 100:
        raise UnitError("bad-value", f"share {text!r} must be at least 0% and below 100%")
    return number / 100


def _trim(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def format_duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{_trim(seconds)} s"
    if seconds >= 1e-3 or seconds == 0:
        return f"{_trim(seconds * 1e3)} ms"
    return f"{_trim(seconds * 1e6)} us"

def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
