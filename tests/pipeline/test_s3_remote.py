"""A DVC remote on S3, for real: ``dvc-s3`` against a local S3-compatible server on 127.0.0.1.

The server is moto's, started and stopped by :func:`tests.s3_server.moto_s3` (why moto: there).

A git + DVC repository in a temporary directory holds two versions of one synthetic dataset under
``data/canonical`` (``dvc add``). With the remote's ``verify`` on, as the README advises, each pulled
object is md5-checked against its name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.run.test_run_e2e import synth_version
from tests.s3_server import aws_env, moto_s3, s3_client

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
BUCKET = "team"
PREFIX = "hftlab"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory) -> Iterator[str]:
    """moto's S3 server on a free loopback port, for this module; stopped (by its PID) at the end."""
    with moto_s3(tmp_path_factory.mktemp("moto")) as url:
        yield url


def run(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **aws_env(cwd.parent), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("HFTLAB_PROJECT", None)
    out = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (DVC's and hftlab's bookkeeping folders aside) with its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {".staging", ".locks"} & set(p.relative_to(root).parts)
    }


@pytest.fixture(scope="module")
def origin(endpoint: str, tmp_path_factory) -> tuple[Path, list[str]]:
    """A repository with two versions of dataset ``syn`` (a day, then grown by a second day) tracked by DVC,
    pushed to the S3 remote."""
    repo = tmp_path_factory.mktemp("s3") / "origin"
    repo.mkdir()
    run(repo, "git", "init", "-q")
    run(repo, "dvc", "init", "-q")
    versions = []
    for day in ("2024-01-01", "2024-01-02"):  # the second day grows the dataset: a second version
        out = run(repo, "hftlab", "--root", "data/canonical", "data", "synth", "--id", "syn", "--start", day,
                  "--days", "0.002", "--events-per-second", "20")  # fmt: skip
        versions.append(synth_version(out.stdout))
    s3_client(endpoint).create_bucket(Bucket=BUCKET)
    run(repo, "dvc", "add", "-q", "data/canonical")
    run(repo, "dvc", "remote", "add", "-d", "team", f"s3://{BUCKET}/{PREFIX}")
    run(repo, "dvc", "remote", "modify", "team", "endpointurl", endpoint)
    run(repo, "dvc", "remote", "modify", "team", "verify", "true")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "two dataset versions on the S3 remote")
    run(repo, "dvc", "push")
    return repo, versions


def clone(origin: Path, name: str) -> Path:
    run(origin.parent, "git", "clone", "-q", str(origin), name)
    return origin.parent / name


def test_push_puts_every_cache_object_in_the_bucket_and_a_fresh_clone_pulls_the_same_bytes(origin, endpoint):
    """The bucket holds exactly the objects of the local cache (by md5 name); a fresh clone with an empty
    cache pulls a byte-identical ``data/canonical``, and ``hftlab check`` finds both versions sealed."""
    repo, versions = origin
    cache = repo / ".dvc" / "cache" / "files" / "md5"
    local = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())
    listed = s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/files/md5/")
    remote = sorted(o["Key"].removeprefix(f"{PREFIX}/files/md5/") for o in listed["Contents"])
    assert local == remote and len(remote) >= 8  # 2 versions x (manifest + 3 feeds) + the directory listing
    b = clone(repo, "b")
    assert not (b / "data" / "canonical").exists()
    pulled = run(b, "dvc", "pull")
    assert f"{len(remote)} files fetched" in pulled.stdout + pulled.stderr
    assert files(b / "data" / "canonical") == files(repo / "data" / "canonical")
    check = run(b, "hftlab", "check").stdout
    assert "ok: 0 run directories, 2 dataset versions" in check
    assert {p.name for p in (b / "data" / "canonical" / "syn").iterdir() if not p.name.startswith(".")} == set(versions)


def test_a_clone_pulls_one_dataset_version_only(origin):
    """A granular pull (the path of one version inside the tracked folder) fetches that version's objects
    only: what a worker that needs one dataset version would do."""
    repo, (first, second) = origin
    c = clone(repo, "c")
    run(c, "dvc", "pull", f"data/canonical/syn/{first}")
    got = files(c / "data" / "canonical")
    assert got and all(name.startswith(f"syn/{first}/") for name in got)
    assert got == {k: v for k, v in files(repo / "data" / "canonical").items() if k.startswith(f"syn/{first}/")}
    assert not (c / "data" / "canonical" / "syn" / second).exists()
    cached = [p for p in (c / ".dvc" / "cache" / "files" / "md5").rglob("*") if p.is_file()]
    assert len(cached) < len(files(repo / "data" / "canonical"))  # the other version was not fetched


def test_an_object_changed_in_the_bucket_is_refused_on_pull(origin, endpoint, tmp_path: Path):
    """One byte flipped in a stored object (bit rot, a bad copy, tampering): a fresh clone's pull exits
    non-zero, and the file it belongs to is not checked out with the wrong bytes."""
    repo, (first, _) = origin
    manifest = repo / "data" / "canonical" / "syn" / first / "manifest.json"
    data = manifest.read_bytes()
    oid = hashlib.md5(data).hexdigest()
    key = f"{PREFIX}/files/md5/{oid[:2]}/{oid[2:]}"
    client = s3_client(endpoint)
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes([data[0] ^ 1]) + data[1:])
    try:
        d = clone(repo, "d")
        pulled = run(d, "dvc", "pull", check=False)
        assert pulled.returncode != 0, pulled.stdout
        assert "failed to pull data" in (pulled.stdout + pulled.stderr).lower()
        got = d / "data" / "canonical" / "syn" / first / "manifest.json"
        assert not got.exists() or got.read_bytes() == data
    finally:
        client.put_object(Bucket=BUCKET, Key=key, Body=data)
        shutil.rmtree(repo.parent / "d", ignore_errors=True)
