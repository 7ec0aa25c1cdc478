"""Short, fixed-width renderings of sizes, rates and durations for a terminal cell budget."""

from __future__ import annotations

import time

_PREFIXES = ("", "k", "M", "G", "T", "P")


def _scaled(value: float) -> tuple[str, str]:
    """A number of at most 4 characters and its SI prefix: 1536 -> ('1.5', 'k')."""
    for prefix in _PREFIXES:
        if abs(value) < 999.5 or prefix == _PREFIXES[-1]:
            if prefix == "" or abs(value) >= 99.95:
                return f"{value:.0f}", prefix
            return f"{value:.1f}", prefix
        value /= 1000.0
    raise AssertionError("unreachable: the last prefix always returns")


def human_bytes(count: float) -> str:
    """1536 -> '1.5k'; at most 5 characters, no unit letter for plain bytes."""
    number, prefix = _scaled(float(count))
    return number + prefix


def human_bits_per_s(bytes_per_s: float) -> str:
    """Link speeds as operators quote them: 6_250_000 B/s -> '50.0 Mbit/s'."""
    number, prefix = _scaled(float(bytes_per_s) * 8)
    return f"{number} {prefix}bit/s"


def human_duration(seconds: float) -> str:
    """45 -> '45s', 125 -> '2m05s', 7300 -> '2h01m'."""
    total = round(max(0.0, seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 100:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d"


def clock(unix_seconds: float) -> str:
    """Local wall-clock time of day, HH:MM:SS."""
    return time.strftime("%H:%M:%S", time.localtime(unix_seconds))
