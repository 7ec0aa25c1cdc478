"""`lanscatter keys new|show`: a private key only its owner reads, and the line for the site tree."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lanscatter.cli import run
from lanscatter.core.signing import parse_origin_key, public_key_of
from lanscatter.disk.signing_keys import load_signing_key


def test_new_writes_a_private_key_and_prints_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["keys", "new", "--dir", str(tmp_path / "keys")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    key_file = tmp_path / "keys" / "origin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert line.startswith("origin_key: ed25519:")
    assert parse_origin_key(line.split(": ", 1)[1]) == public_key_of(load_signing_key(key_file))

    assert run(["keys", "show", str(tmp_path / "keys")]) == 0
    assert capsys.readouterr().out.strip() == line
    assert run(["keys", "show", str(key_file)]) == 0
    assert capsys.readouterr().out.strip() == line


def test_new_never_replaces_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["keys", "new", "--dir", str(tmp_path)]) == 0
    before = (tmp_path / "origin.key").read_bytes()
    assert run(["keys", "new", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "origin.key").read_bytes() == before


def test_show_of_something_that_is_no_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["keys", "show", str(tmp_path)]) == 2
    assert "cannot read the signing key" in capsys.readouterr().err
    (tmp_path / "origin.key").write_text("hello\n")
    assert run(["keys", "show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not an unencrypted PEM private key" in err and "keys new" in err
