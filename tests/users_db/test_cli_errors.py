"""Every failure of the ``gateway`` command is one ``Error:`` line saying what is wrong
and what to do, with a non-zero exit, and never a traceback unless ``--debug``.

The commands run as real processes (``python -m gateway.cli``), as an operator sees
them.  "Permission denied" is real too: as root, the child gives up the capabilities
that let root ignore file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) before exec.
"""

from __future__ import annotations

import ctypes
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from gateway.cli import LazyGroup, main
from gateway.users.database import schema
from tests.users_db.conftest import TEST_HASH_ENV

GATEWAY = [sys.executable, "-m", "gateway.cli"]
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ \[gateway[.\w]*\] ")
URL_ADVICE = "give a URL such as postgresql://user:password@host/database or sqlite:///"

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _file_modes_apply() -> Callable[[], None] | None:
    """A preexec function after which file modes bind the child, even as root."""
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:
        for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
            if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")

    return drop


def gateway(*args: str, cwd: Path, env: dict[str, str] | None = None,
            file_modes_apply: bool = False, stdin: str = "") -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    environment.update(TEST_HASH_ENV)
    environment.update(env or {})
    return subprocess.run(
        [*GATEWAY, *args], cwd=cwd, env=environment, input=stdin, capture_output=True,
        text=True, timeout=60, preexec_fn=_file_modes_apply() if file_modes_apply else None,
    )


def the_error(done: subprocess.CompletedProcess[str]) -> str:
    """The one ``Error:`` line of a failed command (other stderr lines may be logs)."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    *others, last = done.stderr.splitlines()
    assert last.startswith("Error: "), done.stderr
    # anything before it is the server's log (gateway serve), never more of the error
    assert all(_LOG_LINE.match(line) for line in others), done.stderr
    return last


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port nothing listens on while the test runs (bound, never listening)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


# -------------------------------------------------------------------------- bad URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "Error: bad database URL (--database-url or GATEWAY_DATABASE_URL): "
                      f"it does not parse; {URL_ADVICE}"),
        ("mysql://gw:s3cretpw@db/gateway", "Error: bad database URL mysql://gw:***@db/gateway: "
                                           "its driver is not installed (No module named "),
        ("oracle+nodriver://db/x", "Error: bad database URL oracle+nodriver://db/x: "
                                   "Can't load plugin"),
    ],
)
def test_bad_database_url(tmp_path: Path, url: str, expected: str) -> None:
    for command in (["users", "list"], ["db", "upgrade"]):
        line = the_error(gateway(*command, "--database-url", url, cwd=tmp_path))
        assert line.startswith(expected), line
        assert "s3cretpw" not in line and URL_ADVICE in line
    served = the_error(gateway("serve", "--port", "0", "--database-url", url, cwd=tmp_path))
    assert served.startswith("Error: [users.database] url: bad database URL"), served
    assert URL_ADVICE in served and "s3cretpw" not in served


# ---------------------------------------------------------------- database not usable


def test_unreachable_database(tmp_path: Path, refused_port: int) -> None:
    url = f"postgresql://nobody:s3cretpw@127.0.0.1:{refused_port}/none"
    expected = (f"Error: cannot reach the database postgresql+asyncpg://nobody:***@127.0.0.1:"
                f"{refused_port}/none: ")
    for args in (["users", "list"], ["serve", "--port", "0"]):
        line = the_error(gateway(*args, cwd=tmp_path, env={"GATEWAY_DATABASE_URL": url}))
        assert line.startswith(expected), line
        assert line.endswith("check that it is running and that the host and port in the URL are right")
        assert "s3cretpw" not in line


def test_database_refuses_the_login_or_lacks_the_database(tmp_path: Path,
                                                          postgres_admin_url: str) -> None:
    admin = make_url(postgres_admin_url)
    wrong_password = admin.set(password="not-the-password").render_as_string(hide_password=False)
    line = the_error(gateway("users", "list", "--database-url", wrong_password, cwd=tmp_path))
    assert line.startswith(f"Error: database {admin.set(password='x').render_as_string()} refused: ")
    assert "password authentication failed" in line
    assert line.endswith("check the user name and password in the URL")

    missing = admin.set(database="gw_no_such_database").render_as_string(hide_password=False)
    line = the_error(gateway("serve", "--port", "0", "--database-url", missing, cwd=tmp_path))
    assert 'database "gw_no_such_database" does not exist' in line
    assert line.endswith("create the database (createdb) or fix its name in the URL")


def test_schema_too_old(tmp_path: Path, empty_database_url: str) -> None:
    old = gateway("db", "upgrade", "0001_accounts", "--database-url", empty_database_url,
                  cwd=tmp_path)
    assert old.returncode == 0 and "schema at revision 0001_accounts" in old.stdout, old.stderr
    shown = make_url(empty_database_url).render_as_string()
    for args in (["users", "list"], ["users", "add", "zoe", "--no-password"],
                 ["serve", "--port", "0"]):
        line = the_error(gateway(*args, "--database-url", empty_database_url, cwd=tmp_path))
        assert line == (
            f"Error: the database {shown} has schema revision 0001_accounts, this gateway needs "
            f"{schema.head_revision()}: run 'gateway db upgrade --database-url URL' "
            "(or with GATEWAY_DATABASE_URL set)"
        )
    assert gateway("db", "upgrade", "--database-url", empty_database_url,
                   cwd=tmp_path).returncode == 0
    assert gateway("users", "list", "--database-url", empty_database_url,
                   cwd=tmp_path).stdout == "no users\n"


# --------------------------------------------------------------- missing migrations


def test_missing_migrations_named_by_the_variable(tmp_path: Path) -> None:
    nowhere = tmp_path / "not-a-history"
    nowhere.mkdir()
    env = {"GATEWAY_MIGRATIONS": str(nowhere),
           "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'accounts.sqlite3'}"}
    expected = (f"Error: the schema history is missing: GATEWAY_MIGRATIONS={nowhere} has no "
                "env.py and versions/; unset GATEWAY_MIGRATIONS to use the history installed "
                "with gateway, or point it at a directory that has them")
    for args in (["db", "upgrade"], ["db", "current"], ["users", "list"],
                 ["serve", "--port", "0"]):
        assert the_error(gateway(*args, cwd=tmp_path, env=env)) == expected, args


def test_missing_migrations_in_the_installation(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken installation (the history not shipped, as once in the wheel) says so."""
    monkeypatch.delenv("GATEWAY_MIGRATIONS", raising=False)
    monkeypatch.setattr(schema, "MIGRATIONS", tmp_path / "site-packages" / "migrations")
    url = f"sqlite:///{tmp_path / 'accounts.sqlite3'}"
    result = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 1
    assert result.output == (
        "Error: the schema history is missing from this installation "
        f"({tmp_path / 'site-packages' / 'migrations'} has no env.py and versions/): "
        "reinstall gateway (pip install --force-reinstall gateway)\n"
    )


# ---------------------------------------------------------------- permission denied


def _mode(path: Path, mode: int) -> None:
    path.chmod(mode)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_permission_denied_on_files(tmp_path: Path) -> None:
    fresh = gateway("db", "upgrade", "--database-url", f"sqlite:///{tmp_path / 'locked.sqlite3'}",
                    cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    locked = tmp_path / "locked.sqlite3"
    _mode(locked, 0)
    for args in (["users", "list"], ["serve", "--port", "0"]):
        line = the_error(gateway(*args, "--database-url", f"sqlite:///{locked}", cwd=tmp_path,
                                 file_modes_apply=True))
        assert line == (f"Error: cannot open the SQLite database {locked}: its directory must "
                        "exist and this user must be allowed to read and write the file and the "
                        "directory")

    _mode(locked, 0o444)
    line = the_error(gateway("users", "add", "zoe", "--root", "/srv/zoe", "--password-stdin",
                             "--database-url", f"sqlite:///{locked}", cwd=tmp_path,
                             file_modes_apply=True, stdin="pw\n"))
    assert line == (f"Error: the SQLite database {locked} is read-only for this user: let it "
                    "write the file and its directory")

    closed = tmp_path / "closed"
    closed.mkdir()
    _mode(closed, 0o555)
    line = the_error(gateway("db", "upgrade", "--database-url",
                             f"sqlite:///{closed / 'sub' / 'g.sqlite3'}", cwd=tmp_path,
                             file_modes_apply=True))
    assert line.startswith(f"Error: permission denied on {closed / 'sub'} (SQLite database ")
    assert line.endswith("let this user write it and its directory, or choose another --database-url")

    config = tmp_path / "gateway.toml"
    config.write_text("[storage]\nroot = \"/srv/ftp\"\n")
    _mode(config, 0)
    expected = (f"Error: bad configuration: cannot read configuration file {config}: permission "
                "denied; let the user running gateway read it")
    for args in (["serve", "-c", str(config)], ["users", "add", "zoe", "-c", str(config)]):
        assert the_error(gateway(*args, cwd=tmp_path, file_modes_apply=True)) == expected


# ------------------------------------------------------------- --debug, the unexpected


def test_debug_shows_the_traceback_behind_the_error(tmp_path: Path) -> None:
    done = gateway("--debug", "users", "list", "--database-url", "mysql://x/y", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "ModuleNotFoundError: No module named" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("Error: bad database URL mysql://x/y: ")


def _boom() -> None:
    raise RuntimeError("the code was wrong\nsecond line")


def test_an_unexpected_failure_is_one_line_too() -> None:
    group = LazyGroup(name="gateway", params=main.params, callback=main.callback,
                      commands={"boom": click.Command("boom", callback=_boom)})
    plain = CliRunner().invoke(group, ["boom"])
    assert plain.exit_code == 1
    assert plain.output == (
        "Error: unexpected failure (RuntimeError: the code was wrong); run the command again "
        "with 'gateway --debug ...' to see where, and report it\n"
    )
    debug = CliRunner().invoke(group, ["--debug", "boom"])
    assert isinstance(debug.exception, RuntimeError)  # propagates: Python prints it
