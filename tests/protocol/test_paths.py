"""Virtual path resolution and confinement, including fuzzing with hostile names."""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protocol.paths import ROOT, is_within, resolve_virtual, virtual_to_real

P = PurePosixPath


@pytest.mark.parametrize(
    ("cwd", "arg", "expected"),
    [
        ("/", "", "/"),
        ("/", "a", "/a"),
        ("/a", "b", "/a/b"),
        ("/a", "/b", "/b"),
        ("/a/b", "..", "/a"),
        ("/a/b", "../..", "/"),
        ("/a/b", "../../../../..", "/"),
        ("/", "/../../etc/passwd", "/etc/passwd"),
        ("/a", "./b/./c/", "/a/b/c"),
        ("/", "a//b///c", "/a/b/c"),
        ("/", "//a", "/a"),
        ("/", "a/../../b", "/b"),
        ("/a", ".", "/a"),
        ("/", "...", "/..."),
        ("/", "a\\..\\b", "/a\\..\\b"),  # backslash is an ordinary character
        ("/", " spaced ", "/ spaced "),
        ("/", "caf\udce9", "/caf\udce9"),
    ],
)
def test_resolve_virtual(cwd: str, arg: str, expected: str) -> None:
    assert resolve_virtual(P(cwd), arg) == P(expected)


def test_resolve_virtual_rejects_nul() -> None:
    with pytest.raises(ValueError, match="NUL in path"):
        resolve_virtual(ROOT, "a\0b")


hostile_part = st.sampled_from(["..", ".", "", "/", "//", "a", "b c", "\\", "\udcff", "é", "…"])
hostile = st.lists(hostile_part, max_size=12).map("/".join) | st.text(max_size=40)
cwds = st.lists(st.text(alphabet="abc.", min_size=1, max_size=3), max_size=4).map(
    lambda parts: resolve_virtual(ROOT, "/".join(parts))
)


@given(cwds, hostile)
def test_resolved_path_is_absolute_and_normal(cwd: PurePosixPath, arg: str) -> None:
    try:
        path = resolve_virtual(cwd, arg)
    except ValueError:
        assert "\0" in arg
        return
    assert path.is_absolute()
    assert path.parts[0] == "/"
    assert "." not in path.parts and ".." not in path.parts
    assert "//" not in str(path)
    assert resolve_virtual(ROOT, str(path)) == path  # idempotent


@given(cwds, hostile)
def test_real_path_stays_under_base(cwd: PurePosixPath, arg: str) -> None:
    if "\0" in arg:
        return
    base = PurePosixPath("/srv/ftp/alice")
    real = virtual_to_real(base, resolve_virtual(cwd, arg))
    assert real.is_relative_to(base)
    assert ".." not in real.parts
    assert is_within(base, real)


def test_virtual_to_real() -> None:
    assert virtual_to_real(Path("/srv"), P("/")) == Path("/srv")
    assert virtual_to_real(Path("/srv"), P("/a/b")) == Path("/srv/a/b")
    result = virtual_to_real(Path("base"), P("/a"))
    assert isinstance(result, Path) and result == Path("base/a")
    assert virtual_to_real(PurePosixPath("/srv"), P("/x")) == PurePosixPath("/srv/x")


def test_virtual_to_real_keeps_base_type_windows() -> None:
    # A backslash stays inside one part even under a Windows base: the backend must
    # refuse such names, but they cannot climb out lexically.
    real = virtual_to_real(PureWindowsPath("C:/srv"), P("/a"))
    assert real == PureWindowsPath("C:/srv/a")


@pytest.mark.parametrize("bad", [P("a/b"), P("/a/../b"), P("..")])
def test_virtual_to_real_rejects_unresolved(bad: PurePosixPath) -> None:
    with pytest.raises(ValueError):
        virtual_to_real(Path("/srv"), bad)


@pytest.mark.parametrize(
    ("root", "path", "ok"),
    [
        ("/", "/", True),
        ("/", "/a/b", True),
        ("/foo", "/foo", True),
        ("/foo", "/foo/bar", True),
        ("/foo", "/foobar", False),
        ("/foo/bar", "/foo", False),
        ("/a", "/b/a", False),
    ],
)
def test_is_within(root: str, path: str, ok: bool) -> None:
    assert is_within(P(root), P(path)) is ok
    assert is_within(root, path) is ok
