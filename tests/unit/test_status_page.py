"""The HTML status page puts what the swarm's members say (their names) into its table as text,
never as markup: a member named `<img src=x onerror=...>` must not run script in an operator's
browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources

import pytest

PAGE = resources.files("lanscatter").joinpath("static/status.html").read_text(encoding="utf-8")
HOSTILE = ['<img src=x onerror="alert(1)">', "a&b", "'quoted'", "</td></tr><script>x()</script>"]


def test_every_value_put_into_the_table_markup_is_escaped_or_a_number() -> None:
    rows = [line for line in PAGE.splitlines() if "html+=" in line]
    assert rows, "the page builds no table rows"
    allowed = re.compile(r"^(esc|fmt|slots|Number)\(|^row$|^n\.online\?")
    for line in rows:
        for expr in re.findall(r"\$\{([^}]*)\}", line):
            assert allowed.search(expr), f"{expr!r} goes into the page's markup unescaped"


def test_the_page_escape_turns_markup_into_text() -> None:
    if shutil.which("node") is None:
        pytest.skip("node.js is not installed: the page's escape function is not run")
    esc = re.search(r"function esc\(s\)\{.*\}", PAGE)
    assert esc is not None, "the page has no esc()"
    script = esc.group(0) + f"\nconsole.log(JSON.stringify({json.dumps(HOSTILE)}.map(esc)));"
    out = json.loads(subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30,
                                    check=True).stdout)
    for raw, shown in zip(HOSTILE, out, strict=True):
        assert not set("<>\"'") & set(shown), shown
        assert shown.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace(
            "&#39;", "'").replace("&amp;", "&") == raw
