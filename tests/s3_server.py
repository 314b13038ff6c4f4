"""A local S3-compatible server for tests: moto's (``python -m moto.server``) on a free loopback port.

One process from the package registry: no container engine, no account. MinIO would be closer to a
production store, but it is a binary outside the package registries this project installs from. moto
implements S3's REST API (buckets, multipart upload, ETags, listing), which is what DVC's
s3fs/aiobotocore speak. Started by :func:`moto_s3`, stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.cluster import free_port


def aws_env(home: Path) -> dict[str, str]:
    """Test credentials, and no user's AWS config or proxy in the way."""
    return {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", "DVC_NO_ANALYTICS": "1",
    }  # fmt: skip


@contextlib.contextmanager
def moto_s3(folder: Path) -> Iterator[str]:
    """moto's S3 server (its log in ``folder``): its endpoint URL while the context lasts."""
    port = free_port()
    log = folder / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **aws_env(folder)},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"moto's server did not start: {log.read_text()}") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def s3_client(endpoint: str):
    """A client of the test server (credentials given here: no user's AWS config is read)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                        region_name="us-east-1")  # fmt: skip
