"""Bytes and rates as the whole product prints and reads them: one convention, one formatter.

Convention (docs/topology.md, "Units"): sizes and byte rates print in binary units (KiB, MiB, GiB:
powers of 1024), everywhere (terminal, logs, the monitor, the report's text, the HTML page); link
speeds print in decimal bits per second (Mbit/s), as links are sold. Input sizes follow one grammar,
the one of the site-tree file (`lanscatter.core.units.parse_size`): `16MiB` is 16 x 2**20 bytes,
`16MB` 16 x 10**6; a bare number or a bare prefix (`16M`) is an error that says what to write.
"""

from __future__ import annotations

import argparse

_BINARY = ("", "Ki", "Mi", "Gi", "Ti", "Pi")
_DECIMAL = ("", "k", "M", "G", "T", "P")


def format_bytes(n: float, *, compact: bool = False) -> str:
    """A byte count in binary units: 509_607_936 -> '486 MiB'; 1536 -> '1.5 KiB'; 12 -> '12 B'.

    `compact`: at most five characters for a table cell, no space and no 'B': '486Mi', '1.5Ki', '12'.
    """
    value = float(n)
    for prefix in _BINARY:
        if abs(value) < 999.5 or prefix == _BINARY[-1]:
            if prefix == "":
                number = f"{value:.0f}"
            elif compact:
                number = f"{value:.1f}" if abs(value) < 9.95 else f"{value:.0f}"
            else:
                number = f"{value:.3g}" if abs(value) < 99.95 else f"{value:.0f}"
            if compact:
                return number + prefix
            return f"{number} {prefix}B"
        value /= 1024.0
    raise AssertionError("unreachable: the last prefix always returns")


def format_byte_rate(bytes_per_s: float, *, compact: bool = False) -> str:
    """Bytes per second, binary units: 3_145_728 -> '3 MiB/s' (compact '3.0Mi/s')."""
    return f"{format_bytes(bytes_per_s, compact=compact)}/s"


def format_bits_per_s(bytes_per_s: float) -> str:
    """A link speed as links are sold, decimal bits: 6_250_000 B/s -> '50 Mbit/s'."""
    value = float(bytes_per_s) * 8
    for prefix in _DECIMAL:
        if abs(value) < 999.5 or prefix == _DECIMAL[-1]:
            number = f"{value:.3g}" if abs(value) < 99.95 else f"{value:.0f}"
            return f"{number} {prefix}bit/s"
        value /= 1000.0
    raise AssertionError("unreachable: the last prefix always returns")


def parse_size(text: str) -> int:
    """A size on the command line, in the grammar of the site-tree file (`16MiB`, `1GB`)."""
    # Imported here: the topology package prints through this module (no import cycle).
    from lanscatter.core.units import UnitError
    from lanscatter.core.units import parse_size as _parse_size

    try:
        return _parse_size(text)
    except UnitError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def mbit_to_bytes(text: str) -> float:
    """A rate in Mbit/s (decimal, as links are sold) to bytes/s."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate in Mbit/s: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("rate must be positive")
    return value * 1e6 / 8
