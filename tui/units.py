"""Short renderings of durations and clock times for a terminal cell budget (sizes and rates: the
one formatter of the product, `lanscatter.core.sizes`)."""

from __future__ import annotations

import time


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
