"""The pull-request review workflow: its file is a valid GitHub Actions workflow (checked against the
workflow schema vendored by check-jsonschema, offline) that calls the scripts tested here and in
tests/pipeline; ``python -m hftlab.analysis.github`` keeps one comment per pull request current, through a
local HTTP server that answers as GitHub's REST API does, and commits the charts to a branch of a real
git remote; a fork's pull request posts nothing and writes the job summary."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from hftlab.analysis.github import ARTIFACT, MARKER, PLOTS_BRANCH
from tests.conftest import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "experiment-review.yml"
BIN = Path(sys.executable).parent


def check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True)  # fmt: skip


def test_the_workflow_is_valid_for_github_actions_and_a_broken_one_is_not(tmp_path: Path) -> None:
    assert 0 == check_workflow(WORKFLOW).returncode, check_workflow(WORKFLOW).stdout
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"))
    out = check_workflow(broken)
    assert 1 == out.returncode and "runs-on" in out.stdout


def test_the_workflow_calls_the_tested_scripts_with_the_paths_they_write() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]["review"]
    runs = {step.get("name", step.get("id", "")): step.get("run", "") for step in jobs["steps"]}
    assert runs["Review"].startswith(".github/scripts/review ") and runs["Review"].endswith(" review")
    assert os.access(PROJECT_ROOT / ".github" / "scripts" / "review", os.X_OK)
    assert "-m hftlab.analysis.github review/review.md --plots review/plots" in runs["Comment"]
    upload = next(s for s in jobs["steps"] if s.get("name") == "Upload the charts")
    assert (ARTIFACT, "review/plots") == (upload["with"]["name"], upload["with"]["path"])
    assert "actions/cache@v4" in [s.get("uses") for s in jobs["steps"]]


class FakeGitHub(ThreadingHTTPServer):
    """The issue-comment endpoints of GitHub's REST API, in memory; every request is logged."""

    def __init__(self, comments: list[dict[str, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.comments, self.log = comments, []  # type: list[dict[str, Any]], list[tuple[str, str, Any]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeGitHub

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.server.log.append(("GET", url.path, self.headers["Authorization"]))
        assert re.fullmatch(r"/repos/o/r/issues/7/comments", url.path)
        q = parse_qs(url.query)
        size, page = int(q["per_page"][0]), int(q["page"][0])
        self._reply(200, self.server.comments[(page - 1) * size : page * size])

    def do_POST(self) -> None:
        body = self._body()
        self.server.log.append(("POST", self.path, body))
        made = {"id": 1000 + len(self.server.comments), "body": body["body"]}
        self.server.comments.append(made)
        self._reply(201, made)

    def do_PATCH(self) -> None:
        body = self._body()
        self.server.log.append(("PATCH", self.path, body))
        cid = int(self.path.rsplit("/", 1)[1])
        found = next(c for c in self.server.comments if c["id"] == cid)
        found["body"] = body["body"]
        self._reply(200, found)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    # 100 comments of others first: the review comment is found on the second page
    server = FakeGitHub([{"id": i, "body": f"a comment {i}"} for i in range(100)])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A clone of a bare 'origin', with a review (Markdown naming two charts) and the charts."""
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(tmp_path, "clone", "-q", str(origin), str(work))
    for key, value in (("user.email", "t@hftlab.invalid"), ("user.name", "t")):
        git(work, "config", key, value)
    (work / "README").write_text("x\n")
    git(work, "add", "README")
    git(work, "commit", "-qm", "first")
    git(work, "push", "-q", "origin", "main")
    plots = work / "review" / "plots"
    plots.mkdir(parents=True)
    for name in ("a_net_pnl.png", "b_net_pnl.png"):
        (plots / name).write_bytes(b"\x89PNG " + name.encode())
    (work / "review" / "review.md").write_text(
        "## Experiment review\n\n![a net_pnl](review/plots/a_net_pnl.png)\n![b net_pnl](review/plots/b_net_pnl.png)\n"
    )
    return work


def event(tmp_path: Path, head_repo: str) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"repository": {"full_name": "o/r"},
                                "pull_request": {"number": 7, "head": {"repo": {"full_name": head_repo}}}}))  # fmt: skip
    return path


def publish(work: Path, github: FakeGitHub, event_path: Path, summary: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GITHUB_EVENT_PATH": str(event_path), "GITHUB_API_URL": github.url,
           "GITHUB_SERVER_URL": "https://github.example", "GITHUB_TOKEN": "t0ken", "GITHUB_STEP_SUMMARY": str(summary)}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "hftlab.analysis.github", "review/review.md", "--plots", "review/plots"],
                          cwd=work, env=env, capture_output=True, text=True, check=True)  # fmt: skip


def test_one_comment_per_pull_request_edited_on_every_push_with_its_charts_on_a_branch(
    checkout: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    ev, summary = event(tmp_path, "o/r"), tmp_path / "summary.md"
    head_before = git(checkout, "rev-parse", "HEAD")
    first = publish(checkout, github, ev, summary)
    assert "review comment 1100 created on #7" in first.stdout
    (checkout / "review" / "plots" / "a_net_pnl.png").write_bytes(b"\x89PNG the second push")
    second = publish(checkout, github, ev, summary)
    assert "review comment 1100 updated on #7" in second.stdout

    ours = [c for c in github.comments if MARKER in c["body"]]
    assert 1 == len(ours) and 101 == len(github.comments)
    methods = [entry[0] for entry in github.log]
    assert ["GET", "GET", "POST", "GET", "GET", "PATCH"] == methods  # two pages each time
    assert all(entry[2] == "Bearer t0ken" for entry in github.log if entry[0] == "GET")

    # the charts: one commit per review on the plots branch, the second's parent the first
    tip = git(checkout, "ls-remote", "origin", f"refs/heads/{PLOTS_BRANCH}").split()[0]
    parent = git(checkout, "rev-parse", f"{tip}^")
    assert [f"https://github.example/o/r/raw/{tip}/pr-7/a_net_pnl.png",
            f"https://github.example/o/r/raw/{tip}/pr-7/b_net_pnl.png"] == re.findall(r"\]\(([^)]+)\)", ours[0]["body"])  # fmt: skip
    git(checkout, "fetch", "-q", "origin", PLOTS_BRANCH)
    shown = subprocess.run(["git", "show", f"{tip}:pr-7/a_net_pnl.png"], cwd=checkout, capture_output=True).stdout
    assert b"\x89PNG the second push" == shown
    assert "pr-7/a_net_pnl.png" in git(checkout, "ls-tree", "-r", "--name-only", parent)
    assert "2" == git(checkout, "rev-list", "--count", tip)  # the branch holds only the charts' commits
    # the checkout itself is untouched: same HEAD, nothing staged
    assert head_before == git(checkout, "rev-parse", "HEAD") and "" == git(checkout, "status", "--porcelain", "-uno")
    assert not summary.exists()


def test_a_fork_pull_request_posts_nothing_and_writes_the_job_summary(
    checkout: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    out = publish(checkout, github, event(tmp_path, "someone/r"), summary)
    assert out.stdout.startswith("::notice::pull request #7 comes from a fork")
    assert [] == github.log  # no API call at all
    assert "" == git(checkout, "ls-remote", "origin", f"refs/heads/{PLOTS_BRANCH}")
    text = summary.read_text()
    assert text.startswith(MARKER) and "## Experiment review" in text
    assert f"_a net_pnl: chart `a_net_pnl.png` in the workflow artifact `{ARTIFACT}`_" in text
    assert "review/plots/" not in text
