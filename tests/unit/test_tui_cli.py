"""`lanscatter tui` endpoint parsing, and the monitor staying out of `lanscatter --help`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lanscatter.cli import run
from lanscatter.core.errors import ConfigError
from lanscatter_tui.cli import parse_endpoint


def test_endpoints_with_and_without_a_site_name() -> None:
    assert parse_endpoint("hq=http://127.0.0.2:7001/") == ("hq", "http://127.0.0.2:7001")
    assert parse_endpoint("http://127.0.0.2:7001") == ("", "http://127.0.0.2:7001")
    assert parse_endpoint("http://h:1/a=b") == ("", "http://h:1/a=b")
    # host:port as the other commands take a master: plain HTTP
    assert parse_endpoint("hq=127.0.0.1:7001") == ("hq", "http://127.0.0.1:7001")
    assert parse_endpoint("gw.branch:10564") == ("", "http://gw.branch:10564")
    assert parse_endpoint("[::1]:7001") == ("", "http://[::1]:7001")


@pytest.mark.parametrize("bad", ["hq=127.0.0.1", "nonsense", "ftp://h:1", "hq=http://:7001", "http://h:99999",
                                 "h:99999", "a/b:1"])
def test_bad_endpoints_are_user_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_endpoint(bad)


def test_cli_reports_a_bad_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["tui", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "error: not a status endpoint: 'nonsense'" in err and "hint:" in err
    assert run(["tui", "site-tre.yaml"]) == 2             # a mistyped file, not an endpoint
    err = capsys.readouterr().err
    assert "error: no site-tree file 'site-tre.yaml'" in err and "hint: check the path" in err


def test_help_does_not_load_textual() -> None:
    code = "import sys, lanscatter.cli as c; c.build_parser(); print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
