"""The command lines `up --ssh` runs, the remote script, and how versions are read and compared."""

from __future__ import annotations

import shlex

import pytest

from lanscatter.core.errors import ConfigError
from lanscatter.deploy.ssh_commands import (
    RemoteRun,
    RemoteVersion,
    SshOptions,
    compatibility_problem,
    go_message,
    last_lines,
    parse_version,
    secret_line,
    session_command,
    ssh_argv,
    unreachable_reason,
)


def test_ssh_argv_is_batch_mode_and_ends_options_before_the_destination() -> None:
    argv = ssh_argv(SshOptions(config="/c/ssh_config", user="deploy", options=("Port=2222",)),
                    "10.0.0.5", "lanscatter --version")
    assert argv[0] == "ssh" and "-T" in argv
    assert argv[argv.index("-F") + 1] == "/c/ssh_config"
    assert argv[argv.index("-l") + 1] == "deploy"
    assert "BatchMode=yes" in argv and "Port=2222" in argv
    assert argv[-3:] == ["--", "10.0.0.5", "lanscatter --version"]


def test_a_hostile_destination_cannot_become_an_option() -> None:
    argv = ssh_argv(SshOptions(), "-oProxyCommand=evil", "true")
    assert argv[-3] == "--"


def test_the_session_prints_the_version_then_waits_for_go_the_secret_and_the_file() -> None:
    run = RemoteRun("/opt/l s/lanscatter", "/srv/trees/a b.yaml", "paris-gw", workdir="/var/w",
                    secret_env="MY_SECRET", copy=True)
    words = shlex.split(session_command(run))
    assert words[:3] == ["exec", "sh", "-c"]
    lines = words[3].splitlines()
    assert lines[0] == "v=$('/opt/l s/lanscatter' --version) || exit $?"
    assert lines[2] == 'IFS= read -r go && [ "$go" = go ] || exit 96'
    assert lines[3] == "IFS= read -r LANSCATTER_SECRET || exit 96"
    assert 'MY_SECRET="$LANSCATTER_SECRET"; export MY_SECRET' in lines[4]
    assert lines[5] == "IFS= read -r size || exit 96"
    assert "'/srv/trees/a b.yaml.part.'$$" in lines[6] and "exit 98" in lines[6]   # $$ expanded remotely
    assert "'/opt/l s/lanscatter' up '/srv/trees/a b.yaml' --host paris-gw --headless --workdir /var/w" in words[3]
    assert "kill -TERM $pid" in words[3]
    assert "read -r size" not in session_command(RemoteRun("lanscatter", "t.yaml", "h"))
    hook = session_command(RemoteRun("lanscatter", "t.yaml", "h", on_synced="systemctl reload 'my app'"))
    assert "--on-synced 'systemctl reload '\"'\"'my app'\"'\"''" in shlex.split(hook)[3]


def test_go_carries_the_secret_and_the_file_with_its_length() -> None:
    assert go_message("abc", b"x: 1\n") == b"go\nabc\n5\nx: 1\n"
    assert go_message(None, None) == b"go\n\n"


def test_the_session_refuses_a_variable_name_the_shell_would_run() -> None:
    with pytest.raises(ConfigError):
        session_command(RemoteRun("lanscatter", "t.yaml", "h", secret_env="X; rm -rf /"))


def test_the_secret_is_one_line() -> None:
    assert secret_line("abc") == b"abc\n"
    assert secret_line(None) == b"\n"
    with pytest.raises(ConfigError):
        secret_line("two\nlines")


def test_versions_are_read_with_or_without_a_protocol_range() -> None:
    assert parse_version("lanscatter 0.2.0 (protocol 1..5)\n") == RemoteVersion("0.2.0", (1, 5))
    assert parse_version("motd line\nlanscatter 0.1.0\n") == RemoteVersion("0.1.0", None)
    assert parse_version("bash: lanscatter: command not found") is None


def test_compatibility_names_the_side_to_upgrade() -> None:
    ours = RemoteVersion("0.3.0", (3, 5))
    assert compatibility_problem(ours, RemoteVersion("0.2.0", (2, 4))) is None
    old = compatibility_problem(ours, RemoteVersion("0.1.0", (1, 2)))
    assert old is not None and "upgrade that host" in old
    new = compatibility_problem(ours, RemoteVersion("0.9.0", (6, 7)))
    assert new is not None and "upgrade this control host" in new
    assert compatibility_problem(ours, RemoteVersion("0.3.0", None)) is None
    unknown = compatibility_problem(ours, RemoteVersion("0.0.9", None))
    assert unknown is not None and "install 0.3.0" in unknown


def test_remote_output_is_shortened_and_escaped() -> None:
    text = last_lines("a\n\nb\x1b[31mred\nc\n" + "x" * 1000, count=2, width=50)
    assert "\x1b" not in text and len(text) <= 50
    assert text.startswith("c / xxx")


def test_reasons_for_unusable_hosts() -> None:
    assert "not installed" in unreachable_reason(127, "sh: 1: lanscatter: not found")
    assert unreachable_reason(255, "ssh: connect to host 10.0.0.9 port 22: No route to host\n") == \
        "ssh: connect to host 10.0.0.9 port 22: No route to host"
    assert unreachable_reason(255, "") == "ssh exited with 255"
