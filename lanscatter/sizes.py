"""Sizes and rates as people type them on the command line: `16M`, `64MiB`, `1G`; rates in Mbit/s."""

from __future__ import annotations

import argparse
import re

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """`16M`, `16MiB`, `16MB` (all binary: chunk sizes are powers of two in practice), `1048576`."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 16M, 64MiB, 1G)")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return value


def mbit_to_bytes(text: str) -> float:
    """A rate in Mbit/s (decimal, as links are sold) to bytes/s."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate in Mbit/s: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("rate must be positive")
    return value * 1e6 / 8


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
