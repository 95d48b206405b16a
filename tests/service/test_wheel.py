"""The wheel installs and runs on its own: built from the working tree, installed with
its dependencies into a fresh virtualenv outside the checkout, then ``gateway db
upgrade``, ``gateway users add`` and ``gateway serve`` on the default SQLite database,
an FTP login and upload, and a clean stop on SIGTERM.

An editable install and the source tree hide what the wheel lacks (the Alembic
history once lived outside the package), so nothing here may import from the
checkout: the commands run from a directory outside it, with no PYTHONPATH, and the
test asserts where ``gateway`` was imported from.  The dependencies come from the
package index with pip's usual configuration (and its cache); without the index the
test fails, it does not skip.
"""

from __future__ import annotations

import ftplib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.users.database.schema import MIGRATIONS, head_revision

from .conftest import HOST, base_env

REPO = Path(__file__).resolve().parents[2]
#: What a build of the working tree never needs: environments, caches, earlier builds
#: (a stale build/lib would put deleted files back into the wheel), local state.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".hypothesis", "var", "*.sqlite3",
)


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], stdin: str | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _outside_env(**extra: str) -> dict[str, str]:
    """The environment of an operator's shell: no checkout on sys.path, no active venv."""
    env = base_env(**extra)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSAFEPATH"):
        env.pop(name, None)
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


def _build_and_install(tmp_path: Path) -> Path:
    """Build the working tree's wheel (from a copy) and install it; the venv's bin/."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE, symlinks=True)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(source)],
         cwd=tmp_path, env=base_env())
    (wheel,) = wheels.glob("gateway-*.whl")

    venv = tmp_path / "venv"
    # no pip inside (ensurepip costs seconds): this pip installs into it with --python
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=base_env())
    python = venv / "bin" / "python"
    _run([*pip, "--python", str(python), "install", str(wheel)], cwd=tmp_path, env=base_env())
    return venv


INSPECT = """
import importlib.metadata, json, gateway, backends
from gateway.users.database import schema
files = importlib.metadata.files("gateway")
print(json.dumps({
    "gateway": gateway.__file__,
    "backends": backends.__file__,
    "migrations": str(schema.migrations_directory()),
    "files": [str(f) for f in files],
}))
"""


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_wheel_installs_and_serves_outside_the_checkout(tmp_path: Path, start_gateway):
    venv = _build_and_install(tmp_path)
    gateway = str(venv / "bin" / "gateway")
    work = tmp_path / "run"
    work.mkdir()
    env = _outside_env()

    # the package, and only it, comes from the new environment
    facts = json.loads(_run([str(venv / "bin" / "python"), "-c", INSPECT], cwd=work, env=env).stdout)
    site = venv / "lib"
    for name in ("gateway", "backends", "migrations"):
        assert Path(facts[name]).is_relative_to(site), (name, facts[name])
    installed = {Path(name) for name in facts["files"]}
    tops = {path.parts[0] for path in installed if path.parts[0] != ".."}
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert tops == {"gateway", "backends", f"gateway-{version}.dist-info"}, tops
    assert Path("../../../bin/gateway") in installed
    # every file of the Alembic history ships, whatever revisions are added later
    history = {
        Path("gateway/users/database/migrations") / path.relative_to(MIGRATIONS)
        for path in MIGRATIONS.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {Path("gateway/users/database/migrations/env.py"),
            Path("gateway/users/database/migrations/script.py.mako")} <= history
    assert history <= installed, sorted(map(str, history - installed))

    upgraded = _run([gateway, "db", "upgrade"], cwd=work, env=env)
    assert upgraded.stdout.strip() == f"schema at revision {head_revision()}"
    assert (work / "gateway.sqlite3").is_file()
    added = _run([gateway, "users", "add", "alice", "--password-stdin"], cwd=work, env=env,
                 stdin="wheel-pass\n")
    root = work / "var" / "ftp" / "alice"
    assert added.stdout.strip() == f"user 'alice' added, files in {root}"

    server = start_gateway(argv=[gateway, "serve", "--port", "0"], cwd=work, env=env)
    assert "no accounts yet" not in server.output
    data = os.urandom(200_000)
    ftp = ftplib.FTP(timeout=30)
    ftp.connect(HOST, server.port)
    ftp.login("alice", "wheel-pass")
    try:
        ftp.storbinary("STOR from-wheel.bin", io.BytesIO(data))
    finally:
        ftp.quit()
    assert (root / "from-wheel.bin").read_bytes() == data

    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0, server.output
    assert "Traceback" not in server.output
