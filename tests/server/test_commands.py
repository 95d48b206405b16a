"""Every command of the server, with its success and failure replies.

Real clients where they can say it (ftplib), a raw control connection where they
cannot (missing arguments, wrong order, commands ftplib never sends).
"""

from __future__ import annotations

import calendar
import ftplib
import hashlib
import io
import os
import re
import time
from pathlib import Path

import pytest

from .conftest import (
    Permission,
    User,
    expect_error,
    ftp_connect,
    ftp_login,
    in_thread,
    list_lines,
    read_all,
    retr_bytes,
)

# ----------------------------------------------------------------------------- login


async def test_user_pass_acct_quit(make_server, root: Path, raw) -> None:
    server = await make_server([User("alice", "secret", base_path=root)])
    client = await raw(server, login=False)
    await client.expect("PWD", "503")  # not logged in: USER/PASS first (aioftp's 503)
    await client.expect("PASS secret", "503")  # PASS before USER
    await client.expect("ACCT x", "503")  # ACCT before USER
    await client.expect("USER", "501")
    await client.expect("USER bob", "530")  # no such user, no anonymous
    await client.expect("USER alice", "331")
    await client.expect("ACCT x", "202")
    await client.expect("PASS wrong", "530")
    await client.expect("PWD", "503")
    await client.expect("USER alice", "331")
    await client.expect("PASS secret", "230")
    await client.expect("PASS secret", "503")  # already logged in
    await client.expect("ACCT x", "202")
    await client.expect("PWD", "257")
    await client.expect("QUIT", "221")
    assert await client.at_eof()


async def test_ftplib_login_and_quit(make_server, root: Path) -> None:
    server = await make_server([User("alice", "secret", base_path=root)])

    def scenario() -> None:
        ftp = ftp_connect(server.server_port)
        assert ftp.welcome.startswith("220")
        expect_error("530", ftp.login, "alice", "nope")
        ftp.close()
        ftp = ftp_connect(server.server_port)
        assert ftp.login("alice", "secret").startswith("230")
        assert ftp.quit().startswith("221")

    await in_thread(scenario)


async def test_commands_need_login(server, raw) -> None:
    client = await raw(server, login=False)
    for line in (
        "PWD", "XPWD", "CWD /", "XCWD /", "CDUP", "XCUP", "MKD d", "XMKD d", "RMD d",
        "XRMD d", "LIST", "NLST", "MLSD", "MLST", "RNFR a", "RNTO b", "DELE a", "STOR a",
        "APPE a", "RETR a", "TYPE I", "MODE S", "STRU F", "PASV", "EPSV", "ABOR",
        "REST 0", "SIZE a", "MDTM a", "ALLO 10",
    ):  # fmt: skip
        await client.expect(line, "503")  # bad sequence: USER and PASS first (as aioftp)
    # ... while these work before login
    await client.expect("SYST", "215")
    await client.expect("NOOP", "200")
    await client.expect("FEAT", "211")
    await client.expect("HELP", "214")
    await client.expect("OPTS UTF8 ON", "200")
    await client.login()
    await client.expect("PWD", "257")


async def test_unknown_and_unimplemented_commands(server, raw) -> None:
    client = await raw(server)
    reply = await client.expect("FOOBAR x", "502")  # a verb we do not serve (aioftp's 502)
    assert "FOOBAR" in reply.text
    await client.expect("\x01\x02", "500")  # not a verb at all: a syntax error
    await client.expect("LPRT 4,4,127,0,0,1,2,4,1", "502")  # in the table, not served
    await client.expect("LPSV", "502")
    await client.expect("SITE FROB x", "500")
    await client.expect("NOOP", "200")


#: Each class of refused command: what is sent, the reply it must get.  Every line is
#: followed by NOOP, and the session must still work afterwards (see below).
ERROR_CLASSES: dict[str, list[tuple[bytes | str, str]]] = {
    "unknown-500-502": [
        ("FOOBAR x", "502"), ("XYZZY", "502"), (b"\x01\x02\xfe\r\n", "500"),
        ("RETRX a.txt", "502"), ("SITE FROB x", "500"),
        ("LPRT 4,4,127,0,0,1,2,4,1", "502"), ("LPSV", "502"),  # known, deliberately not served
    ],
    "out-of-sequence-503": [
        ("RNTO /b.txt", "503"),  # no RNFR
        ("RETR /a.txt", "503"), ("LIST", "503"), ("STOR new.txt", "503"),  # no PASV/PORT
        ("PASS again", "503"),  # already logged in
        ("HOST ftp.example.com", "503"),  # HOST after USER
        ("EPSV ALL", "200"), ("PASV", "503"), ("PORT 127,0,0,1,200,1", "503"),
        ("EPRT |1|127.0.0.1|5000|", "503"),  # refused after EPSV ALL
    ],
    "bad-arguments-501": [
        ("TYPE", "501"), ("CWD", "501"), ("REST abc", "501"), ("REST -1", "501"),
        ("PORT 1,2,3", "501"), ("PORT 127,0,0,1,300,1", "501"), ("EPRT garbage", "501"),
        ("MFMT 2019 /a.txt", "501"), ("SITE CHMOD rwx /a.txt", "501"), ("OPTS UTF8 MAYBE", "501"),
        ("PASV", "227"), ("MLSD /a.txt", "501"), ("EPSV foo", "522"), (b"RETR a\x00b\r\n", "501"),
        ("ALLO", "501"), ("SITE UTIME 2020 /a.txt", "501"),
    ],
}


@pytest.mark.parametrize("kind", sorted(ERROR_CLASSES))
async def test_each_error_class_leaves_the_session_usable(server, root: Path, raw, kind: str) -> None:
    """500/502 unknown, 503 out of sequence, 501 bad arguments: each refused command
    gets its code, the next command is answered normally, and at the end the session
    still navigates, renames and transfers."""
    payload = os.urandom(50_000)
    (root / "a.txt").write_bytes(payload)
    (root / "sub").mkdir()
    client = await raw(server)
    await client.expect("CWD sub", "250")
    for line, code in ERROR_CLASSES[kind]:
        await client.expect(line, code)
        await client.expect("NOOP", "200")
    reply = await client.expect("PWD", "257")
    assert '"/sub"' in reply.text  # the errors did not move the session
    await client.expect("CWD /", "250")
    await client.expect("RNFR a.txt", "350")
    await client.expect("RNTO b.txt", "250")
    reader, writer = await client.open_data()  # EPSV, still allowed after EPSV ALL
    await client.expect("RETR b.txt", "150")
    data = await read_all(reader)
    writer.close()
    assert (await client.reply()).code == "226"
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()
    assert sorted(os.listdir(root)) == ["b.txt", "sub"]  # nothing else written


# ----------------------------------------------------------------------------- navigation


async def test_pwd_cwd_cdup_and_x_variants(server, root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "f.txt").write_bytes(b"x")

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        assert ftp.pwd() == "/"
        assert ftp.sendcmd("XPWD").startswith('257 "/"')
        assert ftp.cwd("a").startswith("250")
        assert ftp.pwd() == "/a"
        assert ftp.sendcmd("XCWD b").startswith("250")
        assert ftp.pwd() == "/a/b"
        assert ftp.sendcmd("CDUP").startswith("250")
        assert ftp.pwd() == "/a"
        assert ftp.sendcmd("XCUP").startswith("250")
        assert ftp.pwd() == "/"
        assert ftp.sendcmd("CDUP").startswith("250")  # at the root: stays there
        assert ftp.pwd() == "/"
        expect_error("550", ftp.cwd, "missing")
        expect_error("550", ftp.cwd, "f.txt")  # a file
        expect_error("550", ftp.sendcmd, "XCWD missing")
        expect_error("501", ftp.sendcmd, "CWD")
        assert ftp.pwd() == "/"  # failures did not move us
        ftp.quit()

    await in_thread(scenario)


# ----------------------------------------------------------------------------- directories


async def test_mkd_rmd_and_x_variants(server, root: Path) -> None:
    (root / "full").mkdir()
    (root / "full" / "x").write_bytes(b"x")
    (root / "file").write_bytes(b"x")

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        assert ftp.mkd("new") == "/new"
        assert (root / "new").is_dir()
        assert ftp.sendcmd("XMKD other").startswith('257 "/other"')
        assert (root / "other").is_dir()
        expect_error("550", ftp.mkd, "new")  # exists
        expect_error("501", ftp.sendcmd, "MKD")
        assert ftp.rmd("new").startswith("250")
        assert not (root / "new").exists()
        assert ftp.sendcmd("XRMD other").startswith("250")
        assert not (root / "other").exists()
        expect_error("550", ftp.rmd, "missing")
        expect_error("550", ftp.rmd, "full")  # not empty
        expect_error("550", ftp.rmd, "file")  # not a directory
        expect_error("550", ftp.rmd, "/")
        expect_error("501", ftp.sendcmd, "RMD")
        assert (root / "full" / "x").exists()
        ftp.quit()

    await in_thread(scenario)


async def test_rmd_of_current_directory_moves_up(server, root: Path) -> None:
    (root / "d").mkdir()

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        ftp.cwd("d")
        assert ftp.rmd("/d").startswith("250")
        assert ftp.pwd() == "/"
        ftp.quit()

    await in_thread(scenario)


# ----------------------------------------------------------------------------- listings


async def test_list_variants(server, root: Path) -> None:
    (root / "a.txt").write_bytes(b"12345")
    (root / "b.txt").write_bytes(b"x")
    recent = int(time.time()) - 86400  # yesterday
    os.utime(root / "a.txt", (recent, recent))
    (root / "c.bin").write_bytes(b"x")
    os.utime(root / "c.bin", (0, calendar.timegm((2001, 3, 4, 5, 6, 7))))  # years ago
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"x")

    def names(lines: list[str]) -> list[str]:
        return sorted(line.split()[-1] for line in lines)

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        plain = list_lines(ftp)
        assert names(plain) == ["a.txt", "b.txt", "c.bin", "sub"]
        line = next(x for x in plain if x.endswith(" a.txt"))
        assert re.match(
            r"^-[rwx-]{9} +\d+ ftp ftp +5 \w{3} [ \d]\d ( \d{4}|\d\d:\d\d) a\.txt$", line
        ), line
        assert next(x for x in plain if x.endswith(" sub")).startswith("d")
        # recent: "Mon DD HH:MM" (in UTC); older than six months: "Mon DD  YYYY"
        t = time.gmtime(recent)
        month = "JanFebMarAprMayJunJulAugSepOctNovDec"[3 * t.tm_mon - 3 : 3 * t.tm_mon]
        assert line.endswith(f" {month} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d} a.txt"), line
        assert next(x for x in plain if x.endswith(" c.bin")).endswith(" Mar  4  2001 c.bin")
        for flags in ("-la", "-al", "-a -l", "-l"):
            assert names(list_lines(ftp, f"LIST {flags}")) == names(plain), flags
        assert names(list_lines(ftp, "LIST -la sub")) == ["inner.txt"]
        assert names(list_lines(ftp, "LIST a.txt")) == ["a.txt"]  # a file path
        assert names(list_lines(ftp, "LIST *.txt")) == ["a.txt", "b.txt"]  # a glob
        assert names(list_lines(ftp, "LIST /sub/*.txt")) == ["inner.txt"]
        assert list_lines(ftp, "LIST *.none") == []
        expect_error("550", list_lines, ftp, "LIST missing")
        ftp.quit()

    await in_thread(scenario)


async def test_listing_a_working_directory_removed_meanwhile_answers_550(server, root: Path) -> None:
    # the working directory is listed without a stat first; an empty listing is
    # checked after, so a directory removed behind the session is not shown as empty
    (root / "sub").mkdir()
    (root / "empty").mkdir()

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        ftp.cwd("empty")
        assert list_lines(ftp) == [] and ftp.nlst() == []
        ftp.cwd("/sub")
        (root / "sub").rmdir()
        expect_error("550", list_lines, ftp)
        expect_error("550", ftp.nlst)
        expect_error("550", lambda: list(ftp.mlsd()))
        assert ftp.voidcmd("NOOP").startswith("200")
        ftp.quit()

    await in_thread(scenario)


async def test_nlst(server, root: Path) -> None:
    (root / "a.txt").write_bytes(b"x")
    (root / "b.bin").write_bytes(b"x")
    (root / "sub").mkdir()

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        assert sorted(ftp.nlst()) == ["a.txt", "b.bin", "sub"]
        assert ftp.nlst("*.txt") == ["a.txt"]
        assert ftp.nlst("sub") == []
        expect_error("550", ftp.nlst, "missing")
        ftp.quit()

    await in_thread(scenario)


async def test_mlsd_and_mlst(server, root: Path) -> None:
    (root / "a.txt").write_bytes(b"12345")
    (root / "sub").mkdir()

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        entries = dict(ftp.mlsd())
        assert entries["a.txt"]["type"] == "file"
        assert entries["a.txt"]["size"] == "5"
        assert re.fullmatch(r"\d{14}(\.\d+)?", entries["a.txt"]["modify"])
        assert entries["sub"]["type"] == "dir"
        assert dict(ftp.mlsd("sub")) == {}
        expect_error("550", lambda: list(ftp.mlsd("missing")))
        expect_error("501", lambda: list(ftp.mlsd("a.txt")))  # MLSD needs a directory
        reply = ftp.sendcmd("MLST a.txt")
        lines = reply.splitlines()
        assert lines[0].startswith("250-") and lines[-1].startswith("250 ")
        assert lines[1].startswith(" ") and "size=5;" in lines[1] and lines[1].endswith(" /a.txt")
        assert "type=dir;" in ftp.sendcmd("MLST")
        expect_error("550", ftp.sendcmd, "MLST missing")
        ftp.quit()

    await in_thread(scenario)


async def test_mlsd_mlst_facts_type_size_modify_perm_unique(make_server, root: Path) -> None:
    """RFC 3659 facts from the server: perm follows the user's rights per path, unique
    tells files apart and is stable between MLSD and MLST, modify is the file's mtime."""
    (root / "a.txt").write_bytes(b"12345")
    (root / "b.txt").write_bytes(b"12345")
    os.utime(root / "a.txt", (0, 1_700_000_000))
    (root / "sub").mkdir()
    (root / "ro").mkdir()
    (root / "ro" / "r.txt").write_bytes(b"r")
    user = User(base_path=root, permissions=[
        Permission("/"), Permission("/ro", readable=True, writable=False),
    ])
    server = await make_server([user])

    def scenario() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]], str]:
        ftp = ftp_login(server.server_port)
        top = dict(ftp.mlsd())
        inner = dict(ftp.mlsd("ro"))
        mlst = ftp.sendcmd("MLST a.txt").splitlines()[1]
        ftp.quit()
        return top, inner, mlst

    top, inner, mlst = await in_thread(scenario)
    for entry in (*top.values(), *inner.values()):
        assert set(entry) == {"type", "size", "modify", "create", "perm", "unique"}, entry
    assert top["a.txt"]["type"] == "file" and top["a.txt"]["size"] == "5"
    assert top["a.txt"]["modify"] == "20231114221320"
    assert top["a.txt"]["perm"] == "rwadf"
    assert top["sub"]["type"] == "dir" and top["sub"]["perm"] == "elcmpdf"
    assert top["ro"]["perm"] == "el"  # read-only directory: enter and list only
    assert inner["r.txt"]["perm"] == "r"  # read-only file: retrieve only
    uniques = {top[name]["unique"] for name in ("a.txt", "b.txt", "sub", "ro")}
    assert len(uniques) == 4  # same size and content still differ
    assert f"unique={top['a.txt']['unique']};" in mlst and mlst.endswith(" /a.txt")


#: The name column of a LIST line: everything after the date, spaces included.
LIST_NAME = re.compile(r"^[-dl][rwxsStT-]{9} +\d+ ftp ftp +\d+ [A-Z][a-z]{2} [ \d]\d (?: \d{4}|\d\d:\d\d) (.*)$")


async def test_names_with_spaces_leading_dashes_and_unicode(server, root: Path) -> None:
    """Names are taken byte for byte from the command line: inner and trailing
    spaces, a leading dash and non-ASCII letters all store, list, rename and read."""
    names = ["two  spaces .txt", "-dash.txt", "--help", "ünïcødé 日本語.bin", " leading space"]
    payloads = {name: os.urandom(10_000 + i) for i, name in enumerate(names)}

    def scenario() -> tuple[list[str], list[str], dict[str, bytes]]:
        ftp = ftp_login(server.server_port)
        for name, data in payloads.items():
            assert ftp.storbinary(f"STOR {name}", io.BytesIO(data)).startswith("226")
        nlst = ftp.nlst()
        listed = [LIST_NAME.match(line).group(1) for line in list_lines(ftp, "LIST -la")]  # type: ignore[union-attr]
        assert list_lines(ftp, "LIST ./-dash.txt")[0].endswith(" -dash.txt")  # as with ls
        ftp.rename("-dash.txt", "-renamed.txt")
        ftp.mkd("dir with ßpaces")
        ftp.cwd("dir with ßpaces")
        assert ftp.pwd() == "/dir with ßpaces"
        ftp.cwd("/")
        back = {name: retr_bytes(ftp, "-renamed.txt" if name == "-dash.txt" else name)
                for name in names}
        ftp.delete("--help")
        ftp.quit()
        return nlst, listed, back

    nlst, listed, back = await in_thread(scenario)
    assert sorted(nlst) == sorted(names)
    assert sorted(listed) == sorted(names)
    for name in names:
        assert hashlib.sha256(back[name]).digest() == hashlib.sha256(payloads[name]).digest()
    expected = {*names, "-renamed.txt", "dir with ßpaces"} - {"-dash.txt", "--help"}
    assert set(os.listdir(root)) == expected


async def test_data_commands_need_pasv(server, root: Path, raw) -> None:
    (root / "f").write_bytes(b"x")
    client = await raw(server)
    for line in ("LIST", "NLST", "MLSD", "RETR f", "STOR g", "APPE f"):
        await client.expect(line, "503")
    assert not (root / "g").exists()
    await client.expect("NOOP", "200")


# ----------------------------------------------------------------------------- names


async def test_rnfr_rnto(server, root: Path, raw) -> None:
    (root / "a").write_bytes(b"data")
    (root / "dir").mkdir()
    client = await raw(server)
    await client.expect("RNTO b", "503")  # no RNFR
    await client.expect("RNFR missing", "550")
    await client.expect("RNTO b", "503")  # a failed RNFR leaves nothing to rename
    await client.expect("RNFR", "501")
    await client.expect("RNFR a", "350")
    await client.expect("RNTO b", "250")
    assert (root / "b").read_bytes() == b"data" and not (root / "a").exists()
    await client.expect("RNTO c", "503")  # one RNTO per RNFR
    await client.expect("RNFR b", "350")
    await client.expect("RNTO dir", "550")  # onto a directory
    await client.expect("RNFR dir", "350")
    await client.expect("RNTO dir/inside", "553")  # a directory into itself
    await client.expect("RNFR /", "550")
    await client.expect("RNFR b", "350")
    await client.expect("RNTO dir/b2", "250")
    assert (root / "dir" / "b2").read_bytes() == b"data"


async def test_dele(server, root: Path) -> None:
    (root / "f").write_bytes(b"x")
    (root / "d").mkdir()

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        assert ftp.delete("f").startswith("250")
        assert not (root / "f").exists()
        expect_error("550", ftp.delete, "f")
        expect_error("550", ftp.delete, "d")  # a directory
        expect_error("501", ftp.sendcmd, "DELE")
        ftp.quit()

    await in_thread(scenario)
    assert (root / "d").is_dir()


async def test_size_and_mdtm(server, root: Path) -> None:
    (root / "f").write_bytes(b"123456")
    (root / "d").mkdir()
    import os

    os.utime(root / "f", (1_000_000_000, 1_000_000_000))

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        assert ftp.sendcmd("SIZE f") == "213 6"
        assert ftp.size("f") == 6
        assert ftp.sendcmd("MDTM f") == "213 20010909014640"
        expect_error("550", ftp.sendcmd, "SIZE missing")
        expect_error("550", ftp.sendcmd, "SIZE d")
        expect_error("550", ftp.sendcmd, "MDTM missing")
        expect_error("501", ftp.sendcmd, "SIZE")
        expect_error("501", ftp.sendcmd, "MDTM")
        ftp.quit()

    await in_thread(scenario)


# ----------------------------------------------------------------------------- transfers


async def test_stor_appe_retr(server, root: Path) -> None:
    (root / "d").mkdir()

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        assert ftp.storbinary("STOR f", io.BytesIO(b"hello ")).startswith("226")
        assert (root / "f").read_bytes() == b"hello "
        assert ftp.storbinary("APPE f", io.BytesIO(b"world")).startswith("226")
        assert (root / "f").read_bytes() == b"hello world"
        assert ftp.storbinary("APPE new", io.BytesIO(b"n")).startswith("226")  # APPE creates
        assert (root / "new").read_bytes() == b"n"
        assert retr_bytes(ftp, "f") == b"hello world"
        assert ftp.storbinary("STOR f", io.BytesIO(b"over")).startswith("226")  # replaces
        assert retr_bytes(ftp, "f") == b"over"
        expect_error("550", retr_bytes, ftp, "missing")
        expect_error("550", retr_bytes, ftp, "d")
        expect_error("550", ftp.storbinary, "STOR d", io.BytesIO(b"x"))
        expect_error("550", ftp.storbinary, "STOR nodir/x", io.BytesIO(b"x"))
        expect_error("501", ftp.sendcmd, "RETR")
        expect_error("501", ftp.sendcmd, "STOR")
        expect_error("501", ftp.sendcmd, "APPE")
        assert ftp.sendcmd("NOOP").startswith("200")
        ftp.quit()

    await in_thread(scenario)


async def test_rest_retr_and_stor(server, root: Path) -> None:
    (root / "f").write_bytes(b"0123456789")

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        chunks: list[bytes] = []
        ftp.retrbinary("RETR f", chunks.append, rest=4)
        assert b"".join(chunks) == b"456789"
        assert ftp.storbinary("STOR f", io.BytesIO(b"AB"), rest=3).startswith("226")
        assert (root / "f").read_bytes() == b"012AB56789"
        expect_error("501", ftp.sendcmd, "REST abc")
        expect_error("501", ftp.sendcmd, "REST -5")
        expect_error("501", ftp.sendcmd, "REST")
        # past the end the gap reads as zeros, as on a disk (aioftp's behaviour)
        assert ftp.storbinary("STOR f", io.BytesIO(b"x"), rest=11).startswith("226")
        assert (root / "f").read_bytes() == b"012AB56789\x00x"
        # any command but PASV/EPSV/PORT/EPRT between REST and the transfer clears
        # it (ftplib's storbinary sends TYPE I first)
        assert ftp.sendcmd("REST 3").startswith("350")
        assert ftp.storbinary("STOR g", io.BytesIO(b"whole")).startswith("226")
        assert (root / "g").read_bytes() == b"whole"
        # the offset is used once: the next STOR starts from 0 again
        assert ftp.storbinary("STOR f", io.BytesIO(b"new")).startswith("226")
        assert (root / "f").read_bytes() == b"new"
        ftp.quit()

    await in_thread(scenario)


async def test_type_mode_stru(server, raw) -> None:
    client = await raw(server)
    await client.expect("TYPE A", "200")
    await client.expect("TYPE a n", "200")
    await client.expect("TYPE I", "200")
    await client.expect("TYPE L 8", "200")
    await client.expect("TYPE X", "502")  # as aioftp answers a TYPE it does not serve
    await client.expect("TYPE E", "502")  # as aioftp answers a TYPE it does not serve
    await client.expect("TYPE L 7", "502")  # as aioftp answers a TYPE it does not serve
    await client.expect("TYPE", "501")
    await client.expect("MODE S", "200")
    await client.expect("MODE B", "504")
    await client.expect("MODE", "501")
    await client.expect("STRU F", "200")
    await client.expect("STRU R", "504")
    await client.expect("STRU", "501")
    await client.expect("NOOP", "200")


async def test_pasv_epsv(server, raw) -> None:
    client = await raw(server)
    reply = await client.expect("PASV", "227")
    match = re.search(r"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", reply.text)
    assert match and match.group(1, 2, 3, 4) == ("127", "0", "0", "1")
    await client.expect("EPSV", "229")
    await client.expect("EPSV 1", "229")
    await client.expect("EPSV 2", "522")  # IPv6 on an IPv4 control connection
    await client.expect("EPSV 3", "522")  # RFC 2428: unknown network protocol
    await client.expect("EPSV foo", "522")  # not a protocol we speak
    await client.expect("EPSV ALL", "200")
    await client.expect("PASV", "503")  # refused after EPSV ALL
    await client.expect("EPSV", "229")
    await client.expect("NOOP", "200")


async def test_abor_without_transfer(server, raw) -> None:
    client = await raw(server)
    await client.expect("ABOR", "226")
    await client.expect("NOOP", "200")


async def test_allo_syst_noop(server, raw) -> None:
    client = await raw(server)
    await client.expect("ALLO 1000", "202")
    await client.expect("ALLO", "501")
    reply = await client.expect("SYST", "215")
    assert reply.text == "UNIX Type: L8"
    await client.expect("NOOP", "200")
    await client.expect("noop", "200")  # verbs are case-insensitive


async def test_opts(server, raw) -> None:
    client = await raw(server)
    await client.expect("OPTS UTF8 ON", "200")
    await client.expect("OPTS UTF8 OFF", "200")
    await client.expect("OPTS UTF8 MAYBE", "501")
    await client.expect("OPTS BOGUS x", "501")
    await client.expect("OPTS", "501")
    await client.expect("NOOP", "200")


async def test_help(server, raw) -> None:
    client = await raw(server)
    reply = await client.expect("HELP", "214")
    body = " ".join(reply.lines)
    for verb in ("USER", "RETR", "STOR", "MLSD", "EPSV"):
        assert verb in body
    assert "AUTH" not in body  # TLS not configured
    assert "LPSV" not in body  # known, not served
    reply = await client.expect("HELP RETR", "214")
    assert "RETR" in reply.text
    await client.expect("HELP BOGUS", "502")
    await client.expect("NOOP", "200")


async def test_feat_lists_exactly_the_implemented_extensions(server, raw) -> None:
    client = await raw(server, login=False)
    reply = await client.expect("FEAT", "211")
    assert reply.lines[0] and reply.lines[-1]
    features = sorted(line.strip() for line in reply.lines[1:-1])
    assert features == [
        "AVBL",
        "EPRT",
        "EPSV",
        "HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32",
        "HOST",
        "MDTM",
        "MFMT",
        "MLST type*;size*;modify*;create*;perm*;unique*;",
        "PASV",
        "REST STREAM",
        "SIZE",
        "TVFS",
        "UTF8",
        "XCRC filename;start;end",
        "XMD5 filename;start;end",
        "XSHA1 filename;start;end",
        "XSHA256 filename;start;end",
        "XSHA512 filename;start;end",
    ]
    assert all(line.startswith(" ") for line in reply.lines[1:-1])


async def test_feat_raw_format(server) -> None:
    """Feature lines start with a space (RFC 2389); AUTH/PBSZ/PROT absent without TLS."""

    def scenario() -> str:
        ftp = ftp_connect(server.server_port)
        try:
            return ftp.sendcmd("FEAT")
        finally:
            ftp.close()

    reply = await in_thread(scenario)
    lines = reply.splitlines()
    assert lines[0].startswith("211-") and lines[-1].startswith("211 ")
    assert all(line.startswith(" ") for line in lines[1:-1])
    assert not any(word in reply for word in ("AUTH", "PBSZ", "PROT"))


async def test_feat_with_tls_lists_auth(make_server, server_tls, raw) -> None:
    server = await make_server(tls_context=server_tls)
    client = await raw(server, login=False)
    reply = await client.expect("FEAT", "211")
    features = {line.strip() for line in reply.lines[1:-1]}
    assert {"AUTH TLS", "PBSZ", "PROT"} <= features


async def test_tls_commands_without_tls(make_server, raw) -> None:
    server = await make_server(strict_rfc=True)
    client = await raw(server, login=False)
    await client.expect("AUTH TLS", "502")  # not configured
    await client.expect("PBSZ 0", "503")
    await client.expect("PROT P", "503")
    await client.expect("AUTH", "501")
    await client.login()
    await client.expect("NOOP", "200")


async def test_no_permission_gives_550(make_server, root: Path) -> None:
    (root / "f").write_bytes(b"x")
    (root / "d").mkdir()
    users = [User("ro", "pw", base_path=root, permissions=[Permission("/", writable=False)])]
    server = await make_server(users)

    def scenario() -> None:
        ftp = ftp_login(server.server_port, "ro", "pw")
        assert retr_bytes(ftp, "f") == b"x"  # reading is fine
        expect_error("550", ftp.storbinary, "STOR g", io.BytesIO(b"x"))
        expect_error("550", ftp.storbinary, "APPE f", io.BytesIO(b"x"))
        expect_error("550", ftp.mkd, "new")
        expect_error("550", ftp.rmd, "d")
        expect_error("550", ftp.delete, "f")
        expect_error("550", ftp.sendcmd, "RNFR f")
        assert ftp.sendcmd("NOOP").startswith("200")
        ftp.quit()

    await in_thread(scenario)
    assert (root / "f").read_bytes() == b"x"
    assert not (root / "g").exists() and not (root / "new").exists()
    assert (root / "d").is_dir()


async def test_list_without_read_permission(make_server, root: Path) -> None:
    (root / "secret").mkdir()
    (root / "secret" / "f").write_bytes(b"x")
    users = [
        User(base_path=root, permissions=[Permission("/"), Permission("/secret", readable=False)])
    ]
    server = await make_server(users)

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        expect_error("550", list_lines, ftp, "LIST secret")
        expect_error("550", ftp.nlst, "secret")
        expect_error("550", retr_bytes, ftp, "secret/f")
        expect_error("550", ftp.cwd, "secret")
        expect_error("550", ftp.sendcmd, "SIZE secret/f")
        expect_error("550", ftp.sendcmd, "MDTM secret/f")
        expect_error("550", ftp.sendcmd, "MLST secret/f")
        ftp.quit()

    await in_thread(scenario)


async def test_raw_listing_bytes(server, root: Path, raw) -> None:
    """LIST lines end in CRLF on the wire and the transfer ends with 226."""
    (root / "a").write_bytes(b"x")
    client = await raw(server)
    reader, writer = await client.open_data()
    await client.expect("NLST", "150")
    assert await read_all(reader) == b"a\r\n"
    writer.close()
    assert (await client.reply()).code == "226"


async def test_ftplib_error_classes(server) -> None:
    """ftplib sorts replies by class: 5xx is error_perm (what users catch)."""

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        try:
            ftp.cwd("missing")
        except ftplib.error_perm as exc:
            assert str(exc).startswith("550")
        else:
            raise AssertionError("CWD missing succeeded")
        ftp.quit()

    await in_thread(scenario)


async def test_stor_into_missing_directory_refused_before_any_data(server, raw) -> None:
    client = await raw(server)
    await client.open_data()
    reply = await client.cmd("STOR nodir/x")
    assert reply.code == "550", reply  # no 150 first: the client never sends the bytes
    assert (await client.cmd("NOOP")).code == "200"
