"""A dataset version from a DVC remote, for a worker that does not see the project's filesystem.

The launching side (which has the project: git, ``dvc.lock`` / ``.dvc`` files, ``data/canonical``) names
the version by :func:`locate`: the DVC output that holds it, that output's committed directory hash, the
version's path inside it, and the remote's settings. A worker then :func:`fetch` es exactly that
version into its node's own Canonical Storage (``<node>/canonical/<id>/<version>``) with DVC itself: a
throwaway DVC repository without git (its cache and state inside it, all removed afterwards) that tracks
the output by its hash and ``dvc pull`` s the version's path only (a granular pull: the other versions' objects are not downloaded). Before the version is
moved into place it is verified as ``hftlab check`` verifies Canonical Storage: its manifest hashes to
the version, every file has the size and sha256 the manifest records, no file is unlisted. So a worker
runs on the bytes the run definition pins, or refuses, naming the file; a remote with ``verify = true``
also makes DVC drop any object whose md5 is not its name.

Credentials never travel with the work: the remote's settings that hold one (:data:`SECRET_KEYS`, a
password inside the URL) or name a credential file of this machine (:data:`LOCAL_PATH_KEYS`) are left out,
and a worker authenticates as it would for ``dvc pull`` on its machine (``AWS_*`` variables or an instance role for S3; a ``remote "<name>"`` section of its
global DVC config, which DVC merges into the remote of that name).

A fetched version stays in the node's store: the runs after the first on a node read it (and their
event cache entries) without touching the remote. The store is never trimmed by hftlab; delete it at
will (the next run fetches again).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hftlab.errors import StorageError
from hftlab.files import lock_file, remove_dead_temporaries
from hftlab.storage.catalog import Catalog, Dataset, check_manifest, check_present

#: Remote settings a worker does not get: credentials (DVC's keys that hold one), and paths of the launching
#: machine's credential and certificate files. A password inside the URL is left out too.
SECRET_KEYS = frozenset({
    "access_key_id", "secret_access_key", "session_token", "sse_customer_key", "account_key", "connection_string",
    "sas_token", "client_secret", "gdrive_client_secret", "oss_key_id", "oss_key_secret", "password", "passphrase",
    "token", "bearer_token_command",
})  # fmt: skip
LOCAL_PATH_KEYS = frozenset({
    "credentialpath", "configpath", "cert_path", "key_path", "keyfile", "kerb_ticket",
    "gdrive_service_account_json_file_path", "gdrive_user_credentials_file",
})  # fmt: skip
_OUT = "out"  #: the tracked output's path inside a fetch's throwaway repository
_TMP = ".tmp-"  #: prefix of a fetch's folder (named with its process id: removed once that process died)


@dataclass(frozen=True)
class RemoteVersion:
    """Where a worker finds one dataset version: a DVC remote, the tracked output and the path inside it."""

    dataset_id: str
    version: str
    output: str  #: the DVC output holding the version, relative to the project (for messages)
    output_md5: str  #: the output's committed directory hash (``<md5>.dir``)
    inside: str  #: the version's folder relative to the output (``<version>`` or ``<id>/<version>``)
    remote_name: str
    remote: dict[str, Any]  #: the remote's settings, credentials left out (:data:`SECRET_KEYS`, ...)

    def describe(self) -> str:
        return _named(self.dataset_id, self.version)


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
            f"{_named(dataset.id, dataset.version)} from a DVC remote (`dvc init`, track data/canonical, `dvc push`)"
        ) from None
    except DvcException as exc:
        raise StorageError(f"{project}: DVC could not read the project ({exc})") from None  # fmt: skip
    if not outs:
        raise StorageError(f"{path}: {_named(dataset.id, dataset.version)} is not tracked by DVC, so no worker can fetch it: track its "
                           "folder (`dvc add data/canonical` or a pipeline stage's output), commit, `dvc push`")  # fmt: skip
    out = outs[0]
    output = Path(out.fs_path).relative_to(project).as_posix()
    info = out.hash_info
    if info and info.name == "md5-dos2unix":
        raise StorageError(f"{output}: tracked with DVC 2's hash (md5-dos2unix), which a worker's DVC 3 repository "
                           "does not read: `dvc cache migrate --dvc-files`, commit, `dvc push`")  # fmt: skip
    if not info or not info.value or not info.isdir or info.name != "md5":
        raise StorageError(f"{output}: the DVC output holding {_named(dataset.id, dataset.version)} has no committed directory hash "
                           "(`dvc commit` or `dvc repro`, then `dvc push`)")  # fmt: skip
    inside = path.relative_to(Path(out.fs_path)).as_posix()
    if cache_path is not None and cache_path.is_file():
        listed = json.loads(cache_path.read_text())
        if not any(str(e.get("relpath", "")).startswith(inside + "/") for e in listed):
            raise StorageError(f"{output}: its committed state ({info.value}) does not hold {_named(dataset.id, dataset.version)} "
                               "(`dvc commit` or `dvc repro`, then `dvc push`)")  # fmt: skip
    if not name or not settings:
        raise StorageError(f"{project}: no DVC remote {'named ' + repr(name) if name else 'configured'} to fetch "
                           f"{_named(dataset.id, dataset.version)} from (`dvc remote add -d <name> <url>`; or name one)")  # fmt: skip
    kept = {k: _plain(v) for k, v in settings.items() if k not in SECRET_KEYS | LOCAL_PATH_KEYS}
    if isinstance(kept.get("url"), str):
        kept["url"] = _without_password(kept["url"])
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


def _named(dataset_id: str, version: str) -> str:
    return f"dataset '{dataset_id}' version {version}"


def _without_password(url: str) -> str:
    """``url`` without a password in its user part (``scheme://user:secret@host`` -> ``scheme://user@host``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc + (f":{parts.port}" if parts.port else "")))


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


def _present(catalog: Catalog, ref: RemoteVersion) -> Dataset:
    dataset = catalog.resolve(ref.dataset_id, ref.version)
    check_manifest(dataset)
    check_present(dataset)
    return dataset


def _fetch_locked(ref: RemoteVersion, store: Path, target: Path) -> None:
    from dvc.config import Config
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    staging = store / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(staging, _TMP)  # fetches of workers that died
    scratch = staging / f"{_TMP}fetch-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        dvc_dir = scratch / ".dvc"
        dvc_dir.mkdir()
        config = Config(dvc_dir=str(dvc_dir))  # the node's global DVC config merges in (a remote's credentials)
        with config.edit("repo") as conf:
            conf["core"].update(no_scm=True, remote=ref.remote_name, site_cache_dir=str(dvc_dir / "site"))
            conf["cache"].update(dir=str(dvc_dir / "cache"), type="reflink,copy")  # all of it inside, all removed
            conf["remote"][ref.remote_name] = dict(ref.remote)
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
