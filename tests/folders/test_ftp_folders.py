"""Virtual folders through a real FTP server with accounts in SQLite and PostgreSQL.

alice's tree: ``/`` on local disk (her account root), ``/archive`` a local folder,
``/inbox`` a memory folder, ``/data`` an S3 folder (on the test SeaweedFS) and
``/shared`` another S3 folder mounted read-only.  The folders carry their own storage
options (the S3 endpoint and credentials): the server has none.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.users.database import admin, folder_admin
from gateway.users.database.engine import create_engine
from gateway.users.database.hashing import PasswordHashing
from tests.s3.conftest import all_keys, raw_client
from tests.users_db.conftest import TEST_HASH, ftp_login, in_thread

PASSWORD = "secret"


@dataclass
class Tree:
    port: int
    root: Path
    archive: Path
    s3: Any
    prefix: str

    def key(self, folder: str, name: str) -> str:
        return f"{self.prefix}/{folder}/{name}"


async def make_tree(url: str, root: Path, archive: Path, s3: Any, prefix: str, options: dict[str, Any]) -> None:
    """alice and her folders, made with the operator actions the CLI uses."""
    engine = create_engine(url)
    bucket = s3.bucket
    try:
        await admin.add_user(engine, "alice", password_hash=PasswordHashing(TEST_HASH).hash(PASSWORD),
                             storage_root=str(root))
        await folder_admin.add_folder(engine, "archive", str(archive))
        await folder_admin.add_folder(engine, "inbox", f"memory://inbox-{uuid.uuid4().hex[:8]}")
        await folder_admin.add_folder(engine, "data", f"s3://{bucket}/{prefix}/data", options=options)
        await folder_admin.add_folder(engine, "shared", f"s3://{bucket}/{prefix}/shared", options=options,
                                      description="read by everyone")
        await folder_admin.mount(engine, "alice", "/archive", "archive")
        await folder_admin.mount(engine, "alice", "/inbox", "inbox")
        await folder_admin.mount(engine, "alice", "/data", "data")
        await folder_admin.mount(engine, "alice", "/shared", "shared", read_only=True)
    finally:
        await engine.dispose()


@pytest.fixture
async def tree(database_url: str, tmp_path: Path, root: Path, s3_service: Any, s3_options: dict[str, Any],
               s3_prefix: str, make_manager: Any, make_server: Any) -> Tree:
    archive = tmp_path / "archive"
    await make_tree(database_url, root, archive, s3_service, s3_prefix, s3_options)
    async with raw_client(s3_service) as client:
        for name in ("readme.txt", "sub/keep.txt"):
            await client.put_object(Bucket=s3_service.bucket, Key=f"{s3_prefix}/shared/{name}", Body=b"shared")
    server = await make_server(make_manager(database_url))
    assert server.storage_options is None  # the S3 folders bring their own options
    return Tree(server.server_port, root, archive, s3_service, s3_prefix)


def upload(ftp: ftplib.FTP, path: str, data: bytes) -> str:
    return ftp.storbinary(f"STOR {path}", io.BytesIO(data))


def download(ftp: ftplib.FTP, path: str) -> bytes:
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {path}", out.write)
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reply_of(action: Any, *args: Any) -> str:
    """The error reply of a command that must fail."""
    try:
        action(*args)
    except ftplib.error_perm as exc:
        return str(exc)
    raise AssertionError(f"{action.__name__}{args} succeeded")


def session(port: int, work: Any) -> Any:
    ftp = ftp_login(port, "alice", PASSWORD)
    try:
        return work(ftp)
    finally:
        ftp.quit()


async def s3_keys(tree: Tree, folder: str) -> list[str]:
    async with raw_client(tree.s3) as client:
        return sorted(await all_keys(client, tree.s3.bucket, f"{tree.prefix}/{folder}/"))


async def test_listings_of_the_root_show_the_folders(tree: Tree, database_url: str, tmp_path: Path) -> None:
    (tree.root / "own.txt").write_bytes(b"mine")
    engine = create_engine(database_url)
    try:  # a folder mounted below a directory that exists in no store
        await folder_admin.add_folder(engine, "late", str(tmp_path / "late"))
        await folder_admin.mount(engine, "alice", "/deep/late", "late")
    finally:
        await engine.dispose()

    def work(ftp: ftplib.FTP) -> tuple[list[str], dict[str, Any], list[str]]:
        lines: list[str] = []
        ftp.retrlines("LIST /", lines.append)
        facts: dict[str, Any] = dict(ftp.mlsd("/"))
        shared: list[str] = []
        ftp.retrlines("NLST /shared", shared.append)
        facts["deep listing"] = dict(ftp.mlsd("/deep"))
        upload(ftp, "/deep/late/f", b"late")
        return lines, facts, shared

    lines, facts, shared = await in_thread(session, tree.port, work)
    by_name = {line.split()[-1]: line for line in lines}
    assert sorted(by_name) == ["archive", "data", "deep", "inbox", "own.txt", "shared"]
    assert list(facts.pop("deep listing")) == ["late"]
    assert (tmp_path / "late" / "f").read_bytes() == b"late"
    assert not (tree.root / "deep").exists()
    for name in ("archive", "data", "deep", "inbox", "shared"):
        assert by_name[name].startswith("d"), by_name[name]
        assert facts[name]["type"] == "dir"
    assert facts["own.txt"]["type"] == "file"
    assert sorted(Path(name).name for name in shared) == ["readme.txt", "sub"]


async def test_transfers_and_renames_in_and_between_folders(tree: Tree) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)

    def work(ftp: ftplib.FTP) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for folder in ("archive", "inbox", "data"):
            assert upload(ftp, f"/{folder}/up.bin", payload).startswith("226")
            seen[f"{folder} digest"] = sha(download(ftp, f"/{folder}/up.bin"))
        # within a folder: the store's own rename
        ftp.mkd("/data/dir")
        assert ftp.rename("/data/up.bin", "/data/dir/moved.bin").startswith("250")
        seen["within"] = sha(download(ftp, "/data/dir/moved.bin"))
        # a file between folders: disk -> S3, memory -> disk, S3 -> memory
        ftp.rename("/archive/up.bin", "/data/from-archive.bin")
        ftp.rename("/inbox/up.bin", "/archive/from-inbox.bin")
        ftp.rename("/data/dir/moved.bin", "/inbox/from-data.bin")
        for path in ("/data/from-archive.bin", "/archive/from-inbox.bin", "/inbox/from-data.bin"):
            seen[path] = sha(download(ftp, path))
        seen["archive names"] = sorted(ftp.nlst("/archive"))
        seen["inbox names"] = sorted(ftp.nlst("/inbox"))
        # a directory between folders: refused, nothing moved
        ftp.mkd("/archive/album")
        upload(ftp, "/archive/album/photo.jpg", b"jpeg")
        seen["dir refusal"] = reply_of(ftp.rename, "/archive/album", "/inbox/album")
        seen["album"] = download(ftp, "/archive/album/photo.jpg")
        seen["inbox after"] = sorted(ftp.nlst("/inbox"))
        # the account's own root and a folder mount point stay as they are
        seen["rmd mount"] = reply_of(ftp.rmd, "/inbox")
        return seen

    seen = await in_thread(session, tree.port, work)
    digest = sha(payload)
    assert seen["archive digest"] == seen["inbox digest"] == seen["data digest"] == digest
    assert seen["within"] == digest
    for path in ("/data/from-archive.bin", "/archive/from-inbox.bin", "/inbox/from-data.bin"):
        assert seen[path] == digest, path
    assert [Path(n).name for n in seen["archive names"]] == ["from-inbox.bin"]
    assert [Path(n).name for n in seen["inbox names"]] == ["from-data.bin"]
    assert seen["dir refusal"].startswith("553")
    assert "moves of directories between folders are not supported" in seen["dir refusal"]
    assert seen["album"] == b"jpeg"
    assert [Path(n).name for n in seen["inbox after"]] == ["from-data.bin"]
    assert seen["rmd mount"].startswith("550")
    # what the stores hold, seen behind the server's back
    assert (tree.archive / "from-inbox.bin").read_bytes() == payload
    assert (tree.archive / "album" / "photo.jpg").read_bytes() == b"jpeg"
    assert not (tree.root / "archive").exists() and not (tree.root / "up.bin").exists()
    # MKD made a directory marker; the moved-away file is gone
    assert await s3_keys(tree, "data") == [tree.key("data", "dir/"), tree.key("data", "from-archive.bin")]


async def test_a_read_only_folder_refuses_every_change(tree: Tree) -> None:
    before = await s3_keys(tree, "shared")
    (tree.root / "mine.txt").write_bytes(b"mine")

    def work(ftp: ftplib.FTP) -> dict[str, str]:
        replies = {
            "STOR": reply_of(upload, ftp, "/shared/new.txt", b"x"),
            "STOR over": reply_of(upload, ftp, "/shared/readme.txt", b"x"),
            "APPE": reply_of(ftp.storbinary, "APPE /shared/readme.txt", io.BytesIO(b"x")),
            "DELE": reply_of(ftp.delete, "/shared/readme.txt"),
            "MKD": reply_of(ftp.mkd, "/shared/made"),
            "RMD": reply_of(ftp.rmd, "/shared/sub"),
            "RNFR out": reply_of(ftp.rename, "/shared/readme.txt", "/moved.txt"),
            "RNTO in": reply_of(ftp.rename, "/mine.txt", "/shared/mine.txt"),
            "SITE CHMOD": reply_of(ftp.sendcmd, "SITE CHMOD 600 /shared/readme.txt"),
        }
        ftp.cwd("/shared")  # relative names too
        replies["STOR relative"] = reply_of(upload, ftp, "rel.txt", b"x")
        replies["read"] = download(ftp, "readme.txt").decode()
        return replies

    replies = await in_thread(session, tree.port, work)
    assert replies.pop("read") == "shared"
    for command, reply in replies.items():
        assert reply[:3] in ("550", "553"), (command, reply)
    assert await s3_keys(tree, "shared") == before
    assert (tree.root / "mine.txt").read_bytes() == b"mine"
    assert sorted(p.name for p in tree.root.iterdir()) == ["mine.txt"]
