"""Integrity of DVC-tracked data between the remote, the cache and the workspace, on real git + DVC repos
in temporary directories, with this project's own ``.dvc/config`` (only the remote's url is pointed at a
temporary folder, in the untracked ``.dvc/config.local``).

Every DVC object is named by the md5 of its bytes. The project's remote sets ``verify = true``: each
object a pull or fetch copies into the cache is hashed and compared with its name; one that does not
match is dropped, and the outputs that need it are not checked out (``dvc pull`` exits non-zero naming
them). What ``verify`` does not cover is asserted too, so a DVC upgrade that changes it shows here:
objects already in the local cache are trusted (DVC's read-only mode 0444 marks them as checked), and a
tampered directory listing (``.dir`` object) is dropped but its directory is still checked out from the
remote's listing, which ``dvc status`` then reports.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.pipeline.test_dvc_pipeline import sh

pytestmark = pytest.mark.slow
FILES = {"data.txt": b"hello world data\n", "ok.txt": b"left intact\n"}
DIR_FILES = {"a.txt": b"first file of the directory\n", "b.txt": b"second file of the directory\n"}


@functools.cache
def remote_name() -> str:
    """The project's default remote (core.remote in .dvc/config)."""
    return sh(PROJECT_ROOT, "dvc", "config", "core.remote").stdout.strip()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def object_path(store: Path, oid: str) -> Path:
    """Where DVC 3 keeps object ``oid`` in a cache or a local remote."""
    return store / "files" / "md5" / oid[:2] / oid[2:]


def flip_byte(path: Path) -> None:
    """Flip one bit of the first byte, keeping the file's mode (bit rot or a careless tool does not
    chmod): DVC's objects are read-only (0444), which DVC reads as "already checked"."""
    mode = stat.S_IMODE(path.stat().st_mode)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    path.chmod(mode)


def corrupted_objects(cache: Path) -> list[str]:
    """The checksum pass DVC does not do on a local cache: every object whose md5 is not its name."""
    root = cache / "files" / "md5"
    bad = []
    for p in sorted(root.glob("*/*")):
        if md5(p.read_bytes()) != p.parent.name + p.name.removesuffix(".dir"):
            bad.append(p.relative_to(cache).as_posix())
    return bad


def use_remote(repo: Path, remote: Path) -> None:
    """Point the project's default remote at ``remote`` in the untracked config.local (keeps verify)."""
    sh(repo, "dvc", "remote", "modify", "--local", remote_name(), "url", str(remote))


@pytest.fixture
def origin(tmp_path: Path) -> tuple[Path, Path]:
    """A git + DVC repo with the project's .dvc/config: two tracked files and a tracked directory,
    committed and pushed to a local remote (a folder). Returns (repo, remote)."""
    repo, remote = tmp_path / "origin", tmp_path / "remote"
    repo.mkdir()
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "config", "user.email", "test@hftlab.invalid")
    sh(repo, "git", "config", "user.name", "hftlab test")
    sh(repo, "dvc", "init", "-q")
    shutil.copyfile(PROJECT_ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    use_remote(repo, remote)
    for name, data in FILES.items():
        (repo / name).write_bytes(data)
    (repo / "d").mkdir()
    for name, data in DIR_FILES.items():
        (repo / "d" / name).write_bytes(data)
    sh(repo, "dvc", "add", "-q", *FILES, "d")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "tracked data")
    sh(repo, "dvc", "push", "-q")
    return repo, remote


def clone(origin: Path, remote: Path, name: str = "clone") -> Path:
    target = origin.parent / name
    sh(origin.parent, "git", "clone", "-q", str(origin), name)
    use_remote(target, remote)
    return target


def dir_object(repo: Path) -> str:
    """The .dir object id of the tracked directory ``d`` (from d.dvc)."""
    line = next(x for x in (repo / "d.dvc").read_text().splitlines() if "md5:" in x)
    return line.split("md5:")[1].strip()


def test_the_project_remote_verifies_what_it_pulls() -> None:
    """`.dvc/config`: the default remote has verify = true (DVC's default is false)."""
    assert "true" == sh(PROJECT_ROOT, "dvc", "config", f"remote.{remote_name()}.verify").stdout.strip()


def test_a_flipped_byte_in_a_remote_object_fails_the_pull_and_places_nothing(origin: tuple[Path, Path]) -> None:
    """One byte flipped in the remote object of a tracked file and in one of a tracked directory's files:
    a fresh clone's `dvc pull` exits non-zero naming both outputs; neither is placed in the workspace, the
    corrupted objects are not kept in the cache; the intact file is pulled; `dvc status` is not clean."""
    repo, remote = origin
    flip_byte(object_path(remote, md5(FILES["data.txt"])))
    flip_byte(object_path(remote, md5(DIR_FILES["a.txt"])))
    b = clone(repo, remote)

    out = sh(b, "dvc", "pull", check=False)
    assert 0 != out.returncode, out.stdout + out.stderr
    assert "Checkout failed for following targets" in out.stderr
    failed = out.stderr.split("Checkout failed for following targets:")[1].split("Is your cache")[0].split()
    assert ["d", "data.txt"] == sorted(failed)
    assert not (b / "data.txt").exists() and not (b / "d").exists()  # nothing corrupted is placed
    assert FILES["ok.txt"] == (b / "ok.txt").read_bytes()
    assert [] == corrupted_objects(b / ".dvc" / "cache")
    assert not object_path(b / ".dvc" / "cache", md5(FILES["data.txt"])).exists()
    status = sh(b, "dvc", "status", "-q", check=False)
    assert 1 == status.returncode
    assert "not in cache:       data.txt" in sh(b, "dvc", "status").stdout

    # Each retry fails the same way; -v names the corrupted object (its path in the cache).
    out = sh(b, "dvc", "fetch", "-v", check=False)
    oid = md5(FILES["data.txt"])
    assert f"corrupted cache file '{object_path(b / '.dvc' / 'cache', oid)}'" in out.stdout + out.stderr


def test_without_verify_the_same_flip_is_pulled_silently(origin: tuple[Path, Path]) -> None:
    """The reason for `verify = true`: with DVC's default (verify = false) the corrupted bytes land in the
    workspace, `dvc pull` exits 0 and `dvc status` says everything is up to date."""
    repo, remote = origin
    flip_byte(object_path(remote, md5(FILES["data.txt"])))
    flip_byte(object_path(remote, md5(DIR_FILES["a.txt"])))
    b = clone(repo, remote)
    sh(b, "dvc", "remote", "modify", "--local", remote_name(), "verify", "false")

    sh(b, "dvc", "pull")  # exit 0
    assert FILES["data.txt"] != (b / "data.txt").read_bytes()
    assert DIR_FILES["a.txt"] != (b / "d" / "a.txt").read_bytes()
    assert "Data and pipelines are up to date." in sh(b, "dvc", "status").stdout
    assert {} == json.loads(sh(b, "dvc", "data", "status", "--json").stdout)
    assert 2 == len(corrupted_objects(b / ".dvc" / "cache"))  # only a checksum pass of the cache sees it


def test_a_tampered_directory_listing_is_not_refused_by_the_pull_but_dvc_status_reports_it(
    origin: tuple[Path, Path],
) -> None:
    """A remote .dir object edited (a file renamed): verify drops the object from the cache, yet the pull
    exits 0 and checks the directory out from the remote's listing. `dvc status -q` exits 1 (the directory
    is "not in cache" and modified), and so does `dvc data status`: check one of them after a pull."""
    repo, remote = origin
    listing = object_path(remote, dir_object(repo))
    mode = stat.S_IMODE(listing.stat().st_mode)
    listing.chmod(0o644)
    listing.write_text(listing.read_text().replace('"b.txt"', '"c.txt"'))
    listing.chmod(mode)
    b = clone(repo, remote)

    sh(b, "dvc", "pull")  # exit 0: a limit of verify
    assert ["a.txt", "c.txt"] == sorted(p.name for p in (b / "d").iterdir())
    assert 1 == sh(b, "dvc", "status", "-q", check=False).returncode
    assert "not in cache:       d" in sh(b, "dvc", "status").stdout
    data = json.loads(sh(b, "dvc", "data", "status", "--json").stdout)  # data only: {} when all is well
    assert {"not_in_cache": ["d/"], "uncommitted": {"modified": ["d/"]}} == data


def test_a_corrupted_read_only_object_in_the_local_cache_goes_unnoticed_by_dvc(origin: tuple[Path, Path]) -> None:
    """A byte flipped in the local cache, the object still read-only (0444) as DVC left it: DVC trusts it.
    `dvc status` is clean, `dvc checkout` places the corrupted bytes and `dvc push` uploads them. A
    checksum pass of the cache names the object, and a clone pulling it (verify) refuses it."""
    repo, remote = origin
    cache = repo / ".dvc" / "cache"
    oid = md5(FILES["data.txt"])
    shutil.rmtree(remote)  # the remote lost its copy: the next push uploads the cache's
    flip_byte(object_path(cache, oid))

    assert "Data and pipelines are up to date." in sh(repo, "dvc", "status").stdout
    (repo / "data.txt").unlink()
    sh(repo, "dvc", "checkout")  # exit 0
    assert FILES["data.txt"] != (repo / "data.txt").read_bytes()
    assert "Data and pipelines are up to date." in sh(repo, "dvc", "status").stdout
    assert [f"files/md5/{oid[:2]}/{oid[2:]}"] == corrupted_objects(cache)

    sh(repo, "dvc", "push")  # exit 0: push does not verify
    assert FILES["data.txt"] != object_path(remote, oid).read_bytes()
    b = clone(repo, remote)
    out = sh(b, "dvc", "pull", check=False)
    assert 0 != out.returncode and "data.txt" in out.stderr
    assert not (b / "data.txt").exists()


def test_a_corrupted_writable_object_in_the_local_cache_is_dropped_by_dvc_status(origin: tuple[Path, Path]) -> None:
    """The same flip on an object that is no longer read-only: DVC re-hashes it, removes it from the cache
    and reports the output "not in cache" (`dvc status -q` exits 1); checkout then fails, placing nothing."""
    repo, _ = origin
    path = object_path(repo / ".dvc" / "cache", md5(FILES["data.txt"]))
    flip_byte(path)
    path.chmod(0o644)

    assert 1 == sh(repo, "dvc", "status", "-q", check=False).returncode
    assert "not in cache:       data.txt" in sh(repo, "dvc", "status").stdout
    assert not path.exists()
    (repo / "data.txt").unlink()
    out = sh(repo, "dvc", "checkout", check=False)
    assert 0 != out.returncode and "data.txt" in out.stderr
    assert not (repo / "data.txt").exists()


def test_a_corrupted_writable_remote_object_is_deleted_from_the_remote_by_the_pull(origin: tuple[Path, Path]) -> None:
    """A corrupted remote object that is not read-only: the pull's existence check hashes it, deletes it
    from the (local) remote, reports it missing and fails, placing nothing. The remote needs a push from a
    good cache, which then uploads it again."""
    repo, remote = origin
    path = object_path(remote, md5(FILES["data.txt"]))
    flip_byte(path)
    path.chmod(0o644)
    b = clone(repo, remote)

    out = sh(b, "dvc", "pull", check=False)
    assert 0 != out.returncode and "data.txt" in out.stderr
    assert f"md5: {md5(FILES['data.txt'])}" in out.stderr  # "Missing cache files:" names the object
    assert not path.exists() and not (b / "data.txt").exists()
    sh(repo, "dvc", "push")
    assert FILES["data.txt"] == path.read_bytes()
