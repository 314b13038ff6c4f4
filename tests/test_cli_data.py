"""`hftlab data ...` through the installed console script: synth, list --json, verify, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HFTLAB = Path(sys.executable).with_name("hftlab")


def hftlab(*args: str, root: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert HFTLAB.is_file(), f"the hftlab console script is not installed at {HFTLAB} (run ./dev setup)"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    out = subprocess.run([HFTLAB, "--root", str(root), *args], capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"hftlab {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


SYNTH = ("data", "synth", "--days", "0.002", "--events-per-second", "20")


def test_synth_same_seed_same_version_other_seed_other_version(tmp_path: Path):
    """Two synth runs with one seed promote one version (the second is a no-op); another seed, another."""
    root = tmp_path / "canonical"
    first = hftlab(*SYNTH, "--seed", "5", "--id", "a", root=root)
    second = hftlab(*SYNTH, "--seed", "5", "--id", "a", root=root)
    third = hftlab(*SYNTH, "--seed", "6", "--id", "b", root=root)
    assert first.stdout.startswith("promoted: a version ")
    assert second.stdout.startswith("already promoted (identical content): a version ")
    listed = json.loads(hftlab("data", "list", "--json", root=root).stdout)
    versions = {row["id"]: row["version"] for row in listed}
    assert versions["a"] in first.stdout and versions["a"] in second.stdout
    assert versions["a"] != versions["b"] and versions["b"] in third.stdout


def test_list_json_fields(tmp_path: Path):
    """`data list --json` is an array of objects with id, version, rows, start and end."""
    root = tmp_path / "canonical"
    hftlab(*SYNTH, "--seed", "1", "--id", "syn", "--start", "2024-02-03", root=root)
    (row,) = json.loads(hftlab("data", "list", "--json", root=root).stdout)
    assert {"id", "version", "rows", "start", "end", "feeds"} <= set(row)
    assert "syn" == row["id"]
    assert row["rows"] == sum(row["feeds"].values()) and row["rows"] > 0
    assert row["start"].startswith("2024-02-03T00:00") and row["start"] < row["end"]


def test_verify_fails_naming_the_flipped_file(tmp_path: Path):
    """After flipping one byte of a promoted Parquet file, `data verify` exits non-zero naming it."""
    root = tmp_path / "canonical"
    hftlab(*SYNTH, "--id", "syn", root=root)
    assert "ok: syn" in hftlab("data", "verify", "syn", root=root).stdout
    victim = sorted(root.rglob("feed=depth/*/part-0.parquet"))[0]
    os.chmod(victim, 0o644)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 3] ^= 0x10
    victim.write_bytes(bytes(raw))
    for extra in ((), ("--quick",)):
        out = hftlab("data", "verify", *extra, root=root, check=False)
        assert 1 == out.returncode
        assert str(victim) in out.stderr and "FAILED: syn" in out.stderr


def test_import_error_is_one_clear_line_and_exit_2(tmp_path: Path):
    """A bad input file gives exit 2 and one line naming file, line and rule; nothing is promoted."""
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"this is not gzip")
    root = tmp_path / "canonical"
    out = hftlab(
        "data", "import", "binance-futures", str(bad), "--symbol", "BTCUSDT", "--tick-size", "0.1", "--lot-size",
        "0.001", root=root, check=False,
    )  # fmt: skip
    assert 2 == out.returncode
    assert "hftlab: error:" in out.stderr and str(bad) in out.stderr and "[unreadable-input]" in out.stderr
    assert "Traceback" not in out.stderr
    assert [] == json.loads(hftlab("data", "list", "--json", root=root).stdout)


def test_verify_on_empty_storage_fails(tmp_path: Path):
    """Verifying nothing is an error, not a silent success."""
    out = hftlab("data", "verify", root=tmp_path / "none", check=False)
    assert 2 == out.returncode and "no datasets" in out.stderr


@pytest.mark.shared_data
def test_import_real_binance_sample(shared_data: Path, tmp_path: Path):
    """The real BTCUSDT sample imports through the CLI with the auto correction recorded."""
    root = tmp_path / "canonical"
    out = hftlab(
        "data", "import", "binance-futures", str(shared_data / "binance-futures" / "btcusdt_20240808.gz"),
        "--symbol", "BTCUSDT", "--tick-size", "0.1", "--lot-size", "0.001", "--local-ts-correction", "auto",
        "--id", "btc", root=root,
    )  # fmt: skip
    assert "promoted: btc version" in out.stdout
    (row,) = json.loads(hftlab("data", "list", "--json", root=root).stdout)
    assert {"bbo": 132_178, "depth": 443_521, "snapshot": 2_002, "trades": 21_313} == row["feeds"]


def test_user_errors_are_one_line_and_bugs_show_a_traceback(tmp_path: Path, monkeypatch, capsys):
    """An HftlabError is one line, exit 2; any other exception is a bug: traceback, 'this is a bug', exit 3."""
    from hftlab import cli
    from hftlab.errors import StorageError

    def user_error(args):
        raise StorageError("dataset 'x' is missing")

    def bug(args):
        raise KeyError("oops")

    monkeypatch.setattr(cli, "_cmd_list", user_error)
    assert 2 == cli.main(["--root", str(tmp_path), "data", "list"])
    err = capsys.readouterr().err
    assert "hftlab: error: dataset 'x' is missing\n" == err
    monkeypatch.setattr(cli, "_cmd_list", bug)
    assert 3 == cli.main(["--root", str(tmp_path), "data", "list"])
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError: 'oops'" in err
    assert "this is a bug in hftlab" in err


def test_a_bug_in_a_single_run_is_reported_once(tmp_path: Path, monkeypatch, capsys):
    """``hftlab run`` hitting a bug (not a user error): one traceback, one 'this is a bug' line, exit 3."""
    from hftlab import cli
    from hftlab.sweep import app
    from tests.run.test_run_e2e import make_project

    project = make_project(tmp_path / "p")

    def bug(cfg):
        raise KeyError("oops")

    monkeypatch.setattr(app, "execute_composed", bug)
    monkeypatch.setenv("HFTLAB_PROJECT", str(project))
    monkeypatch.chdir(project)
    assert 3 == cli.main(["run"])
    err = capsys.readouterr().err
    assert 1 == err.count("Traceback (most recent call last)") and 1 == err.count("KeyError: 'oops'"), err
    assert 1 == err.count("this is a bug in hftlab"), err
