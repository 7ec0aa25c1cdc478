"""Units as operators write them: bits vs bytes exact, bare numbers refused with a hint."""

from __future__ import annotations

import argparse

import pytest

from lanscatter.core.sizes import format_bits_per_s, format_byte_rate, format_bytes
from lanscatter.core.sizes import parse_size as cli_size
from lanscatter.core.units import (
    UnitError,
    format_duration,
    parse_duration,
    parse_size,
    parse_speed,
)


@pytest.mark.parametrize(("text", "bytes_per_s"), [
    ("50Mbit", 6_250_000),
    ("50 Mbit/s", 6_250_000),
    ("50mbit", 6_250_000),
    ("50Mb", 6_250_000),
    ("50Mbps", 6_250_000),
    ("1Gbit", 125_000_000),
    ("1.5Gbit", 187_500_000),
    ("10kbit", 1_250),
    ("100MB/s", 100_000_000),
    ("100MB", 100_000_000),
    ("100MBps", 100_000_000),
    ("12MiB/s", 12 * 1024**2),
    ("1Kibit", 128),
    ("8bit", 1),
    ("800b/s", 100),
])
def test_speeds(text: str, bytes_per_s: float) -> None:
    assert parse_speed(text) == pytest.approx(bytes_per_s)


@pytest.mark.parametrize(("text", "code", "fragment"), [
    ("50", "unit-missing", "'50Mbit' (bits) or '50MB/s' (bytes)"),
    ("0Mbit", "bad-speed", "above zero"),
    ("-5Mbit", "bad-speed", "above zero"),
    ("50Mbti", "bad-unit", "did you mean 'Mbit'"),
    ("50mb", "bad-unit", "unknown speed unit 'mb'"),
    ("20ms", "bad-unit", "not a speed unit"),
    ("fast", "bad-speed", "not a speed"),
])
def test_bad_speeds(text: str, code: str, fragment: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_speed(text)
    assert info.value.code == code
    assert fragment in info.value.message


@pytest.mark.parametrize(("text", "size"), [
    ("16MiB", 16 * 1024**2), ("16MB", 16_000_000), ("512KiB", 512 * 1024), ("1GiB", 1024**3),
    ("1.5KiB", 1536), ("64kB", 64_000), ("100B", 100),
])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(("text", "code"), [
    ("16", "unit-missing"), ("16Mbit", "bad-unit"), ("0.3B", "bad-size"), ("0MiB", "bad-size"),
    ("16Mo", "bad-unit"),
])
def test_bad_sizes(text: str, code: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_size(text)
    assert info.value.code == code


@pytest.mark.parametrize(("text", "seconds"), [
    ("20ms", 0.02), ("0ms", 0.0), ("1.5s", 1.5), ("300us", 0.0003), ("2min", 120.0),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "code"), [
    ("20", "unit-missing"), ("-1ms", "bad-duration"), ("20mss", "bad-unit"), ("soon", "bad-duration"),
])
def test_bad_durations(text: str, code: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_duration(text)
    assert info.value.code == code


@pytest.mark.parametrize("text", ["16M", "16Mi", "64k", "1G"])
def test_a_bare_prefix_is_ambiguous_and_says_both_readings(text: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_size(text)
    assert info.value.code == "bad-unit"
    assert "iB'" in info.value.message and "B' (powers of 1000)" in info.value.message


def test_command_line_sizes_read_as_in_the_file() -> None:
    # One grammar: 16MB is decimal and 16MiB binary on the command line as in the site-tree file.
    assert cli_size("16MB") == parse_size("16MB") == 16_000_000
    assert cli_size("16MiB") == parse_size("16MiB") == 16 * 2**20
    with pytest.raises(argparse.ArgumentTypeError, match="ambiguous"):
        cli_size("16M")


def test_human_forms() -> None:
    assert format_bits_per_s(6_250_000) == "50 Mbit/s"
    assert format_bits_per_s(125_000_000) == "1 Gbit/s"
    assert format_bits_per_s(100) == "800 bit/s"
    assert format_byte_rate(50 * 2**20) == "50 MiB/s"
    assert format_bytes(16 * 1024**2) == "16 MiB"
    assert format_bytes(510_000_000) == "486 MiB"
    assert format_bytes(100) == "100 B"
    assert [format_bytes(v, compact=True) for v in (0, 999, 1000, 1536, 3 * 2**20, 510_000_000, 2**40)] == [
        "0", "999", "1.0Ki", "1.5Ki", "3.0Mi", "486Mi", "1.0Ti"]
    assert format_duration(0.02) == "20 ms"
    assert format_duration(1.5) == "1.5 s"
    assert format_duration(0.0003) == "300 us"
