"""A dataset version from a DVC remote, for a worker that does not see the project's filesystem.

The launching side (which has the project: git, ``dvc.lock`` / ``.dvc`` files, ``data/canonical``) names
the version by :func:`locate`: the DVC output that holds it, that output's committed directory hash, the
version's path inside it, and the remote's settings. A worker then :func:`fetch` es exactly that
version into its node's own Canonical Storage (``<node>/canonical/<id>/<version>``) with DVC itself: a
throwaway DVC repository without git that tracks the output by its hash and ``dvc pull`` s the version's
path only (a granular pull: the other versions' objects are not downloaded). Before the version is
moved into place it is verified as ``hftlab check`` verifies Canonical Storage: its manifest hashes to
the version, every file has the size and sha256 the manifest records, no file is unlisted. So a worker
runs on the bytes the run definition pins, or refuses, naming the file; a remote with ``verify = true``
also makes DVC drop any object whose md5 is not its name.

Credentials never travel with the work: the remote's settings that look secret (keys, tokens,
passwords, credential files) are left out, and a worker authenticates as it would for ``dvc pull`` on
its machine (``AWS_*`` variables or an instance role for S3; a ``remote "<name>"`` section of its
global DVC config, which DVC merges into the remote of that name).

A fetched version stays in the node's store: the runs after the first on a node read it (and their
event cache entries) without touching the remote. The store is never trimmed by hftlab; delete it at
will (the next run fetches again).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hftlab.errors import StorageError
from hftlab.files import lock_file
from hftlab.storage.catalog import Catalog, Dataset, check_manifest, check_present

#: Remote settings a worker does not get (matched as parts of the key): credentials stay where they are.
SECRET_PARTS = ("secret", "password", "passphrase", "token", "access_key", "account_key", "connection_string",
                "credential", "keyfile", "auth", "sas", "service_account")  # fmt: skip
_OUT = "out"  #: the tracked output's path inside a fetch's throwaway repository


@dataclass(frozen=True)
class RemoteVersion:
    """Where a worker finds one dataset version: a DVC remote, the tracked output and the path inside it."""

    dataset_id: str
    version: str
    output: str  #: the DVC output holding the version, relative to the project (for messages)
    output_md5: str  #: the output's committed directory hash (``<md5>.dir``)
    inside: str  #: the version's folder relative to the output (``<version>`` or ``<id>/<version>``)
    remote_name: str
    remote: dict[str, Any]  #: the remote's settings, secrets left out (:data:`SECRET_PARTS`)

    def describe(self) -> str:
        return f"dataset '{self.dataset_id}' version {self.version}"


def locate(project: Path, dataset: Dataset, remote: str | None = None) -> RemoteVersion:
    """The remote location of ``dataset`` (a version in the project's Canonical Storage): the DVC output
    that tracks it, as committed (``dvc.lock`` or a ``.dvc`` file), and ``remote`` (default: the project's
    default remote). Raises :class:`StorageError` saying what to do when the version is not tracked, not
    committed, or there is no remote."""
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    project = project.resolve()
    path = dataset.path.resolve()
    try:
        with Repo(str(project)) as repo:
            outs = [o for o in repo.index.outs if path == Path(o.fs_path) or path.is_relative_to(Path(o.fs_path))]
            name = remote or repo.config["core"].get("remote")
            settings = dict(repo.config["remote"].get(name) or {}) if name else {}
            cache_path = _cached_listing(repo, outs[0]) if outs else None
    except NotDvcRepoError:
        raise StorageError(
            f"{project} is not a DVC repository: a worker without the project's filesystem fetches "
            f"{_named(dataset)} from a DVC remote (`dvc init`, track data/canonical, `dvc push`)"
        ) from None
    except DvcException as exc:
        raise StorageError(f"{project}: DVC could not read the project ({exc})") from None  # fmt: skip
    if not outs:
        raise StorageError(f"{path}: {_named(dataset)} is not tracked by DVC, so no worker can fetch it: track its "
                           "folder (`dvc add data/canonical` or a pipeline stage's output), commit, `dvc push`")  # fmt: skip
    out = outs[0]
    output = Path(out.fs_path).relative_to(project).as_posix()
    info = out.hash_info
    if not info or not info.value or not info.isdir or info.name != "md5":
        raise StorageError(f"{output}: the DVC output holding {_named(dataset)} has no committed directory hash "
                           "(`dvc commit` or `dvc repro`, then `dvc push`)")  # fmt: skip
    inside = path.relative_to(Path(out.fs_path)).as_posix()
    if cache_path is not None and cache_path.is_file():
        listed = json.loads(cache_path.read_text())
        if not any(str(e.get("relpath", "")).startswith(inside + "/") for e in listed):
            raise StorageError(f"{output}: its committed state ({info.value}) does not hold {_named(dataset)} "
                               "(`dvc commit` or `dvc repro`, then `dvc push`)")  # fmt: skip
    if not name or not settings:
        raise StorageError(f"{project}: no DVC remote {'named ' + repr(name) if name else 'configured'} to fetch "
                           f"{_named(dataset)} from (`dvc remote add -d <name> <url>`; or name one)")  # fmt: skip
    kept = {k: _plain(v) for k, v in settings.items() if not any(part in k.lower() for part in SECRET_PARTS)}
    return RemoteVersion(dataset.id, dataset.version, output, info.value, inside, name, kept)


def _plain(value: Any) -> Any:
    """A remote setting as plain data a worker can unpickle without DVC's config classes: a path as the
    project's config writes it (DVC's ``ExpPath`` keeps that as ``def_path``), so ``~`` is each node's
    home, as a clone's DVC would read it there."""
    if isinstance(value, str):
        return str(getattr(value, "def_path", value))
    return value


def _cached_listing(repo: Any, out: Any) -> Path | None:
    """The committed directory listing of ``out`` in the project's DVC cache, if it is there."""
    info = out.hash_info
    if not info or not info.value:
        return None
    return Path(repo.cache.local.oid_to_path(info.value))


def _named(dataset: Dataset) -> str:
    return f"dataset '{dataset.id}' version {dataset.version}"


def fetch(ref: RemoteVersion, store: Path) -> Dataset:
    """``ref``'s version in the Canonical Storage at ``store``, fetched from its remote and verified unless a
    verified copy is there already. Safe for several processes of one node at once (one fetches, the
    others wait for it)."""
    target = store / ref.dataset_id / ref.version
    catalog = Catalog(store)
    if target.is_dir():  # verified in full when it was fetched; as cheaply as feeding checks it now
        return _present(catalog, ref)
    locks = store / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    fd = lock_file(locks / f"fetch-{ref.dataset_id}-{ref.version}", exclusive=True)
    assert fd is not None  # a waiting lock is always taken
    try:
        if not target.is_dir():  # nobody fetched it while this process waited
            _fetch_locked(ref, store, target)
        return _present(catalog, ref)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Only warnings and errors from ``logger`` while the context lasts."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def _present(catalog: Catalog, ref: RemoteVersion) -> Dataset:
    dataset = catalog.resolve(ref.dataset_id, ref.version)
    check_manifest(dataset)
    check_present(dataset)
    return dataset


def _fetch_locked(ref: RemoteVersion, store: Path, target: Path) -> None:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    scratch = store / ".staging" / f"fetch-{uuid.uuid4().hex}"
    scratch.mkdir(parents=True)
    try:
        with _quiet("dvc.repo.init"):  # "Initialized DVC repository." in every worker's log otherwise
            repo = Repo.init(str(scratch), no_scm=True)
        with repo.config.edit() as conf:
            conf["core"]["remote"] = ref.remote_name
            conf["remote"][ref.remote_name] = dict(ref.remote)
        repo.close()
        (scratch / f"{_OUT}.dvc").write_text(f"outs:\n- md5: {ref.output_md5}\n  hash: md5\n  path: {_OUT}\n")
        try:
            with Repo(str(scratch)) as repo:
                repo.pull(targets=[str(scratch / _OUT / ref.inside)])  # DVC reads targets from the cwd
        except DvcException as exc:
            raise StorageError(
                f"{ref.describe()}: could not fetch it from DVC remote '{ref.remote_name}' ({ref.remote.get('url')}): "
                f"{exc}: push it from the project (`dvc push {ref.output}`), and give this worker the remote's "
                "credentials"
            ) from None
        pulled = scratch / _OUT / ref.inside
        if not pulled.is_dir():
            raise StorageError(f"{ref.describe()}: not in {ref.output} as committed ({ref.output_md5}) on remote "
                               f"'{ref.remote_name}'")  # fmt: skip
        check_root = scratch / "check"  # verified where it landed, then renamed into the store: atomic
        (check_root / ref.dataset_id).mkdir(parents=True)
        os.rename(pulled, check_root / ref.dataset_id / ref.version)
        try:
            Catalog(check_root).verify(ref.dataset_id, ref.version, full=False)
        except StorageError as exc:
            raise StorageError(f"{ref.describe()} as fetched from DVC remote '{ref.remote_name}' is not the version "
                               f"the run definition pins, refusing it: {exc}") from None  # fmt: skip
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(check_root / ref.dataset_id / ref.version, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
