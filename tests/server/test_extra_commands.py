"""STAT, SITE, STOU, MFMT, REIN, HOST, OPTS MLST, the refused CCC/LPRT/LPSV, legacy
device quirks and per-user/listener encodings: each with its failure replies and a
session that goes on after every error."""

from __future__ import annotations

import calendar
import hashlib
import io
import os
import re
import stat
from pathlib import Path

import gateway
from gateway.server.quirks import LEGACY_DEVICES, DeviceQuirks

from .conftest import User, ftp_login, in_thread, read_all, retr_bytes

# ----------------------------------------------------------------------------- STAT


async def test_stat_server_status(server, raw) -> None:
    client = await raw(server, login=False)
    reply = await client.expect("STAT", "211")
    assert "Not logged in" in reply.text
    await client.expect("STAT /", "503")  # a listing needs a login (USER and PASS first)
    await client.login()
    reply = await client.expect("STAT", "211")
    assert "Logged in as anonymous" in reply.text and "TYPE: BINARY" in reply.text
    await client.expect("TYPE A", "200")
    assert "TYPE: ASCII" in (await client.expect("STAT", "211")).text


async def test_stat_path_lists_over_the_control_connection(server, raw, root: Path) -> None:
    (root / "sub").mkdir()
    (root / "a.jpg").write_bytes(b"12345")
    (root / "b.txt").write_bytes(b"1")
    (root / "212 trick").write_bytes(b"")  # a name that looks like a reply end
    client = await raw(server)
    reply = await client.expect("STAT /", "212")
    body = reply.lines[1:-1]
    assert all(line.startswith(" ") for line in body)
    assert sorted(line.split()[-1] for line in body) == ["a.jpg", "b.txt", "sub", "trick"]
    assert any(re.match(r"^ d[rwx-]{9} .* sub$", line) for line in body)
    reply = await client.expect("STAT a.jpg", "213")
    assert reply.lines[1].endswith(" a.jpg") and " 5 " in reply.lines[1]
    reply = await client.expect("STAT *.jpg", "212")  # a glob
    assert [line.split()[-1] for line in reply.lines[1:-1]] == ["a.jpg"]
    reply = await client.expect("STAT -la sub", "212")  # ls flags are accepted
    assert reply.lines[1:-1] == []
    await client.expect("STAT missing", "550")
    await client.expect("STAT ../../..", "212")  # confined to the root
    await client.expect("NOOP", "200")


# ----------------------------------------------------------------------------- SITE, MFMT


async def test_site_help_chmod_utime_on_local_disk(server, raw, root: Path) -> None:
    target = root / "f.txt"
    target.write_bytes(b"x")
    client = await raw(server)
    reply = await client.expect("SITE HELP", "214")
    assert any("CHMOD" in line for line in reply.lines)
    await client.expect("SITE CHMOD 600 f.txt", "200")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    await client.expect("SITE chmod 0644 f.txt", "200")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    for bad in ("SITE CHMOD 999 f.txt", "SITE CHMOD rwx f.txt", "SITE CHMOD 644", "SITE CHMOD"):
        await client.expect(bad, "501")
    await client.expect("SITE CHMOD 644 missing", "550")
    await client.expect("SITE UTIME 20200102030405 f.txt", "200")
    assert target.stat().st_mtime == calendar.timegm((2020, 1, 2, 3, 4, 5))
    await client.expect("SITE UTIME f.txt 20210101000000 20210102030405 20210101000000 UTC", "200")
    assert target.stat().st_mtime == calendar.timegm((2021, 1, 2, 3, 4, 5))
    await client.expect("SITE UTIME 2020 f.txt", "501")
    await client.expect("SITE", "501")
    await client.expect("SITE BOGUS", "500")
    await client.expect("NOOP", "200")


async def test_mfmt(server, raw, root: Path) -> None:
    target = root / "my file.txt"
    target.write_bytes(b"x")
    client = await raw(server)
    reply = await client.expect("MFMT 20191231235959 my file.txt", "213")
    assert reply.text == "Modify=20191231235959; my file.txt"
    assert target.stat().st_mtime == calendar.timegm((2019, 12, 31, 23, 59, 59))
    assert (await client.expect("MDTM my file.txt", "213")).text == "20191231235959"
    for bad in ("MFMT 2019 x", "MFMT 20191332000000 my file.txt", "MFMT 20191231235959", "MFMT"):
        await client.expect(bad, "501")
    await client.expect("MFMT 20191231235959 missing", "550")
    await client.expect("NOOP", "200")


async def test_metadata_commands_without_storage_support(make_server, raw) -> None:
    server = await make_server([gateway.User(base_path="/")], path_io_factory=gateway.MemoryPathIO)
    client = await raw(server, login=False)
    features = (await client.expect("FEAT", "211")).text
    assert "MFMT" not in features  # FEAT advertises only what works
    await client.login()
    reader, writer = await client.open_data()
    await client.expect("STOR f", "150")
    writer.close()
    assert (await client.reply()).code == "226"
    await client.expect("SITE CHMOD 644 f", "504")
    await client.expect("SITE UTIME 20200101000000 f", "504")
    await client.expect("MFMT 20200101000000 f", "502")
    await client.expect("NOOP", "200")
    # the legacy switch turns them into accepted no-ops, for devices that insist
    quirky = await make_server(
        [gateway.User(base_path="/")], path_io_factory=gateway.MemoryPathIO,
        device_quirks=DeviceQuirks(site_noop=True),
    )
    client = await raw(quirky)
    await client.expect("SITE CHMOD 644 f", "200")
    await client.expect("SITE CHMOD 644 /", "550")  # never on the root, no-op or not
    await client.expect("SITE UTIME 20200101000000 /", "200")


# ----------------------------------------------------------------------------- STOU


async def test_stou_reports_the_unique_name(server, raw, root: Path) -> None:
    (root / "photo.jpg").write_bytes(b"old")
    client = await raw(server)
    names = []
    for argument, payload in (("STOU photo.jpg", b"new1"), ("STOU photo.jpg", b"new2"), ("STOU", b"")):
        reader, writer = await client.open_data()
        reply = await client.expect(argument, "150")
        match = re.fullmatch(r"FILE: (\S+)", reply.text)  # RFC 1123 4.1.2.9
        assert match, reply
        names.append(match.group(1))
        writer.write(payload)
        writer.close()
        assert (await client.reply()).code == "226"
    assert len(set(names)) == 3 and "photo.jpg" not in names
    assert names[0].startswith("photo.jpg.")
    assert (root / "photo.jpg").read_bytes() == b"old"  # never overwritten
    assert [(root / name).read_bytes() for name in names] == [b"new1", b"new2", b""]
    await client.expect("PASV", "227")
    await client.expect("STOU missing-dir/x", "550")
    await client.expect("NOOP", "200")


# ----------------------------------------------------------------------------- REIN, HOST, CCC


async def test_rein_resets_the_session(make_server, root: Path, raw) -> None:
    (root / "sub").mkdir()
    server = await make_server([User("alice", "pw", base_path=root)])
    client = await raw(server, login=False)
    await client.login("alice", "pw")
    await client.expect("CWD sub", "250")
    await client.expect("TYPE A", "200")
    await client.expect("EPSV ALL", "200")
    await client.expect("REIN", "220")
    await client.expect("PWD", "503")  # logged out
    await client.login("alice", "pw")
    assert (await client.expect("PWD", "257")).text.startswith('"/"')
    assert "TYPE: BINARY" in (await client.expect("STAT", "211")).text
    await client.expect("PASV", "227")  # EPSV ALL was reset too


async def test_host_rfc7151(server, raw) -> None:
    client = await raw(server, login=False)
    for bad in ("HOST bad_name!", "HOST [not-an-ip]", "HOST -leading.dash", "HOST"):
        await client.expect(bad, "501")
    await client.expect("HOST ftp.example.com", "220")
    await client.expect("HOST [::1]", "220")
    await client.login()
    await client.expect("HOST ftp.example.com", "503")  # after USER
    await client.expect("NOOP", "200")


async def test_refusals_ccc_lprt_lpsv_and_rest_stream(server, raw) -> None:
    client = await raw(server)
    await client.expect("CCC", "534")
    await client.expect("LPRT 4,4,127,0,0,1,2,4,1", "502")
    await client.expect("LPSV", "502")
    await client.expect("REST STREAM", "501")
    await client.expect("REST 10", "350")
    await client.expect("MODE S", "200")
    await client.expect("STRU F", "200")
    await client.expect("ALLO 1000", "202")
    await client.expect("ALLO 1000 R 10", "202")
    await client.expect("NOOP", "200")


async def test_opts_mlst_selects_facts(server, raw, root: Path) -> None:
    (root / "a.txt").write_bytes(b"abc")
    client = await raw(server)
    reply = await client.expect("OPTS MLST size;type;bogus;", "200")
    assert reply.text == "MLST OPTS type;size;"
    reply = await client.expect("MLST a.txt", "250")
    assert reply.lines[1] == " type=file;size=3; /a.txt"
    features = (await client.expect("FEAT", "211")).text
    assert "MLST type*;size*;modify*;create*;perm*;unique*;" in features
    reply = await client.expect("OPTS MLST", "200")  # no facts at all
    assert (await client.expect("MLST a.txt", "250")).lines[1] == "  /a.txt"


# ----------------------------------------------------------------------------- legacy devices


async def test_legacy_device_quirks(make_server, root: Path, raw) -> None:
    (root / "existing").mkdir()
    server = await make_server(device_quirks=LEGACY_DEVICES)
    client = await raw(server)
    await client.expect("ALLO 4096", "200")
    await client.expect("MKD existing", "257")
    (root / "file").write_bytes(b"")
    await client.expect("MKD file", "550")  # a file is still not a directory
    reader, writer = await client.open_data()
    await client.expect("STOR new/deeper/up.bin", "150")  # missing parents are created
    writer.write(b"from a camera")
    writer.close()
    assert (await client.reply()).code == "226"
    assert (root / "new" / "deeper" / "up.bin").read_bytes() == b"from a camera"
    # without a data channel the STOR is refused and creates no directory
    fresh = await raw(server)
    await fresh.expect("STOR never/made/x.bin", "503")
    assert not (root / "never").exists()
    reply = await client.expect("PASV", "227")
    assert len(reply.lines) == 1
    assert len((await client.expect("EPSV", "229")).lines) == 1
    reader, writer = await client.open_data()
    await client.expect("MLSD", "150")
    await read_all(reader)
    writer.close()
    assert (await client.reply()).code == "226"
    # the same server without quirks: standard replies
    plain = await raw(await make_server())
    await plain.expect("ALLO 4096", "202")
    await plain.expect("MKD existing", "550")
    await plain.expect("PASV", "227")


def test_device_quirks_from_names() -> None:
    assert DeviceQuirks.from_names("allo_ok, site_noop") == DeviceQuirks(allo_ok=True, site_noop=True)
    assert DeviceQuirks.from_names(["all"]) == LEGACY_DEVICES
    try:
        DeviceQuirks.from_names("allo_ok,typo")
    except ValueError as exc:
        assert "typo" in str(exc)
    else:
        raise AssertionError("a typo must not pass silently")


# ----------------------------------------------------------------------------- encodings


async def test_listener_encoding_cp1251_round_trips_bytes(make_server, root: Path, raw) -> None:
    server = await make_server(encoding="cp1251")
    name = "отчёт.txt"
    wire = name.encode("cp1251")
    client = await raw(server)
    reader, writer = await client.open_data()
    await client.expect(b"STOR " + wire + b"\r\n", "150")
    writer.write(b"data")
    writer.close()
    assert (await client.reply()).code == "226"
    assert (root / name).read_bytes() == b"data"  # stored under its real name
    reader, writer = await client.open_data()
    await client.expect("NLST", "150")
    assert await read_all(reader) == wire + b"\r\n"  # listed back in the device's bytes
    writer.close()
    assert (await client.reply()).code == "226"
    # a client that announces UTF-8 gets UTF-8 on the same listener
    await client.expect("OPTS UTF8 ON", "200")
    reader, writer = await client.open_data()
    await client.expect("NLST", "150")
    assert await read_all(reader) == name.encode() + b"\r\n"
    writer.close()
    assert (await client.reply()).code == "226"
    reply = await client.expect("OPTS UTF8 OFF", "200")
    assert "cp1251" in reply.text


async def test_per_user_encodings(make_server, root: Path) -> None:
    (root / "日本.txt").write_bytes(b"sjis")
    (root / "café.txt").write_bytes(b"latin")
    device = User("camera", "pw", base_path=root, encoding="shift_jis")
    old = User("scanner", "pw", base_path=root, encoding="latin-1")
    (root / "监控.txt").write_bytes(b"gbk")
    dvr = User("dvr", "pw", base_path=root, encoding="gbk")
    server = await make_server([device, old, dvr])

    def scenario(login: str, encoding: str, name: str) -> bytes:
        ftp = ftp_login(server.server_port, login, "pw", encoding=encoding)
        assert name in ftp.nlst()
        data = retr_bytes(ftp, name)
        ftp.storbinary(f"STOR copy-{name}", io.BytesIO(data))
        ftp.quit()
        return data

    assert await in_thread(scenario, "camera", "shift_jis", "日本.txt") == b"sjis"
    assert await in_thread(scenario, "scanner", "latin-1", "café.txt") == b"latin"
    assert await in_thread(scenario, "dvr", "gbk", "监控.txt") == b"gbk"
    assert (root / "copy-监控.txt").read_bytes() == b"gbk"
    assert (root / "copy-日本.txt").read_bytes() == b"sjis"
    assert (root / "copy-café.txt").read_bytes() == b"latin"


def test_user_encoding_keyword() -> None:
    """``User(encoding=...)`` is keyword-only, checked when the account is made, and
    shown by repr (the rest of aioftp's signature is unchanged)."""
    assert User("a").encoding is None  # the listener's encoding
    assert User("a", "pw", encoding="cp1251").encoding == "cp1251"
    assert "encoding='gbk'" in repr(User("a", "pw", encoding="gbk"))
    try:
        User("a", "pw", encoding="cp-typo")
    except ValueError as exc:
        assert "cp-typo" in str(exc)
    else:
        raise AssertionError("an unknown encoding must be refused when the user is made")
    try:
        User("a", "pw", ".", encoding="cp1251")  # type: ignore[misc]
    except TypeError:
        pass
    else:
        raise AssertionError("base_path stays keyword-only, as in aioftp")


async def test_cp1251_user_end_to_end(make_server, root: Path, raw) -> None:
    """A device account in cp1251 next to a UTF-8 account on one UTF-8 listener:
    the device writes, lists, renames and reads Cyrillic names in its own bytes, the
    files are stored under their real names, and the UTF-8 user sees them in UTF-8."""
    device = User("camera", "pw", base_path=root, encoding="cp1251")
    modern = User("desktop", "pw", base_path=root)
    server = await make_server([device, modern])
    payload = os.urandom(200_000)
    folder, name, renamed = "Снимки", "кадр 01.jpg", "кадр 01 (копия).jpg"

    def as_device() -> tuple[list[str], list[str], dict[str, str], bytes]:
        ftp = ftp_login(server.server_port, "camera", "pw", encoding="cp1251")
        assert ftp.mkd(folder).endswith(folder)
        ftp.cwd(folder)
        assert ftp.pwd() == f"/{folder}"
        assert ftp.storbinary(f"STOR {name}", io.BytesIO(payload)).startswith("226")
        assert ftp.size(name) == len(payload)
        ftp.rename(name, renamed)
        names = ftp.nlst()
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        facts = {entry: info["type"] for entry, info in ftp.mlsd()}
        data = retr_bytes(ftp, renamed)
        ftp.quit()
        return names, lines, facts, data

    names, lines, facts, data = await in_thread(as_device)
    assert names == [renamed]
    assert len(lines) == 1 and lines[0].endswith(" " + renamed)
    assert facts == {renamed: "file"}
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()
    stored = root / folder / renamed  # the real name, not cp1251 bytes read as UTF-8
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(payload).digest()

    def as_desktop() -> list[str]:
        ftp = ftp_login(server.server_port, "desktop", "pw")  # UTF-8
        listed = ftp.nlst(folder)
        ftp.quit()
        return listed

    assert [n.rpartition("/")[2] for n in await in_thread(as_desktop)] == [renamed]

    # on the wire: cp1251 bytes in, the same bytes back, and a byte cp1251 leaves
    # undefined (0x98) survives the round trip instead of becoming "?"
    client = await raw(server, login=False)
    await client.login("camera", "pw")
    odd = "кадр-".encode("cp1251") + b"\x98.raw"
    reader, writer = await client.open_data()
    await client.expect(b"STOR " + odd + b"\r\n", "150")
    writer.write(b"raw frame")
    writer.close()
    assert (await client.reply()).code == "226"
    reader, writer = await client.open_data()
    await client.expect("NLST *.raw", "150")
    assert await read_all(reader) == odd + b"\r\n"
    writer.close()
    assert (await client.reply()).code == "226"
    await client.expect("NOOP", "200")


async def test_invalid_bytes_are_lossless_in_utf8(server, raw, root: Path) -> None:
    wire = b"photo-\xe9\xff\x80.jpg"  # not UTF-8: a device's own code page
    client = await raw(server)
    reader, writer = await client.open_data()
    await client.expect(b"STOR " + wire + b"\r\n", "150")
    writer.write(b"jpeg")
    writer.close()
    assert (await client.reply()).code == "226"
    assert (root / os.fsdecode(wire)).read_bytes() == b"jpeg"
    reader, writer = await client.open_data()
    await client.expect("NLST", "150")
    assert await read_all(reader) == wire + b"\r\n"
    writer.close()
    assert (await client.reply()).code == "226"
    reader, writer = await client.open_data()
    await client.expect(b"RETR " + wire + b"\r\n", "150")
    assert await read_all(reader) == b"jpeg"
    writer.close()
    assert (await client.reply()).code == "226"


async def test_user_code_page_applies_to_the_password(make_server, root: Path, raw) -> None:
    """A cp1251 device sends its password in cp1251 as well (its login is read in the
    listener's encoding: the account is not known before it)."""
    server = await make_server([User("camera", "пароль", base_path=root, encoding="cp1251")])
    client = await raw(server, login=False)
    await client.expect("USER camera", "331")
    await client.expect("PASS пароль".encode("cp1251") + b"\r\n", "230")
