"""Publish a pull request's experiment review on GitHub: one comment per pull request, edited on every
push, with its charts where the comment can show them.

Run by ``.github/workflows/experiment-review.yml`` after ``.github/scripts/review`` wrote the review::

    python -m hftlab.analysis.github review.md --plots reports/diff

It reads the GitHub Actions environment: ``GITHUB_EVENT_PATH`` (the ``pull_request`` event: its number, and
whether its head is in a fork), ``GITHUB_REPOSITORY``, ``GITHUB_API_URL``, ``GITHUB_SERVER_URL``,
``GITHUB_TOKEN``, ``GITHUB_STEP_SUMMARY``.

- **One comment.** The body starts with a hidden marker (:data:`MARKER`). The pull request's comments are
  listed, every page of them; the first holding the marker is edited (PATCH), else one is created (POST).
- **Charts.** A comment shows an image only from a URL; a workflow artifact is a zip download and cannot
  be shown. So the PNGs are committed (git plumbing: no checkout touched) under ``pr-<number>/`` to the
  branch :data:`PLOTS_BRANCH`, each commit's parent the branch's previous tip, pushed, and linked at that
  commit (``<server>/<repo>/raw/<commit>/pr-<number>/<file>``): an older comment version keeps showing its
  own charts. The workflow also uploads them as an artifact.
- **Fork pull requests** get a read-only token: nothing is pushed or posted. The review goes to the job
  summary (``GITHUB_STEP_SUMMARY``, shown on the workflow run's page) with chart links replaced by the
  artifact's name, and a notice says so.

HTTP goes through the standard library (``urllib``): one GET per 100 comments and one POST or PATCH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Hidden first line of the review comment: how the comment to edit is found.
MARKER = "<!-- hftlab-experiment-review -->"
#: The branch holding the charts of review comments (never merged; each commit holds one review's charts).
PLOTS_BRANCH = "hftlab-review-plots"
#: The name of the workflow artifact holding the charts (``.github/workflows/experiment-review.yml``).
ARTIFACT = "experiment-review-plots"


@dataclass(frozen=True)
class PullRequest:
    """The pull request of a ``pull_request`` event."""

    repo: str  #: owner/name of the base repository
    number: int
    fork: bool  #: its head is in another repository (the token is then read-only)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> PullRequest:
        pr = event["pull_request"]
        base = event["repository"]["full_name"]
        head = (pr.get("head") or {}).get("repo") or {}
        return cls(repo=base, number=int(pr["number"]), fork=head.get("full_name") != base)


class GitHub:
    """The REST calls this needs, against ``api`` (``GITHUB_API_URL``) with ``token``."""

    def __init__(self, api: str, token: str) -> None:
        self.api, self.token = api.rstrip("/"), token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        req.add_header("Accept", "application/vnd.github+json")
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("X-GitHub-Api-Version", "2022-11-28")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    def find_comment(self, pr: PullRequest) -> int | None:
        """The id of the first comment of ``pr`` holding :data:`MARKER` (None if none)."""
        page = 1
        while True:
            batch = self.call("GET", f"/repos/{pr.repo}/issues/{pr.number}/comments?per_page=100&page={page}")
            for comment in batch:
                if MARKER in (comment.get("body") or ""):
                    return int(comment["id"])
            if len(batch) < 100:
                return None
            page += 1

    def upsert_comment(self, pr: PullRequest, body: str) -> tuple[str, int]:
        """Edit the review comment of ``pr``, or create it: ("updated" | "created", comment id)."""
        found = self.find_comment(pr)
        if found is None:
            made = self.call("POST", f"/repos/{pr.repo}/issues/{pr.number}/comments", {"body": body})
            return "created", int(made["id"])
        self.call("PATCH", f"/repos/{pr.repo}/issues/comments/{found}", {"body": body})
        return "updated", found


def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip()


def publish_plots(repo: Path, plots: Path, pr: PullRequest, remote: str = "origin") -> str | None:
    """Commit the PNGs of ``plots`` under ``pr-<number>/`` to :data:`PLOTS_BRANCH` of ``remote`` and push it.
    The commit's id (None when there is no PNG). The work tree, index and HEAD of ``repo`` are untouched."""
    pngs = sorted(plots.glob("*.png")) if plots.is_dir() else []
    if not pngs:
        return None
    blobs = "".join(f"100644 blob {_git(repo, 'hash-object', '-w', str(p.resolve()))}\t{p.name}\n" for p in pngs)
    folder = _git(repo, "mktree", stdin=blobs)
    tree = _git(repo, "mktree", stdin=f"040000 tree {folder}\tpr-{pr.number}\n")
    fetched = subprocess.run(["git", "fetch", "-q", remote, f"refs/heads/{PLOTS_BRANCH}"], cwd=repo,
                             capture_output=True, text=True)  # fmt: skip
    parent = ["-p", _git(repo, "rev-parse", "FETCH_HEAD")] if fetched.returncode == 0 else []
    commit = _git(repo, "commit-tree", tree, *parent, "-m", f"charts of the experiment review of #{pr.number}",
                  stdin=None)  # fmt: skip
    _git(repo, "push", "-q", remote, f"{commit}:refs/heads/{PLOTS_BRANCH}")
    return commit


def link_plots(body: str, plots: Path, prefix: str | None) -> str:
    """``body`` with every Markdown image of a file in ``plots`` linked at ``prefix/<file name>``, or, without
    a prefix, replaced by a line naming the artifact that holds it."""
    pattern = re.compile(r"!\[([^\]]*)\]\(" + re.escape(plots.as_posix().rstrip("/")) + r"/([^)/]+)\)")
    if prefix is not None:
        return pattern.sub(lambda m: f"![{m[1]}]({prefix}/{m[2]})", body)
    return pattern.sub(lambda m: f"_{m[1]}: chart `{m[2]}` in the workflow artifact `{ARTIFACT}`_", body)


def publish(body_file: Path, plots: Path, env: dict[str, str], repo: Path) -> str:
    """Publish the review in ``body_file`` as the workflow environment ``env`` allows; what was done."""
    pr = PullRequest.from_event(json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text()))
    body = body_file.read_text()
    if pr.fork:
        summary = env.get("GITHUB_STEP_SUMMARY")
        text = f"{MARKER}\n{link_plots(body, plots, None)}"
        if summary:
            with open(summary, "a") as fh:
                fh.write(text)
        return (f"::notice::pull request #{pr.number} comes from a fork: its token is read-only, so the review "
                "is in this run's job summary, not in a comment; the charts are in the artifact " + ARTIFACT)  # fmt: skip
    commit = publish_plots(repo, plots, pr)
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    prefix = f"{server}/{pr.repo}/raw/{commit}/pr-{pr.number}" if commit else None
    gh = GitHub(env.get("GITHUB_API_URL", "https://api.github.com"), env["GITHUB_TOKEN"])
    how, comment = gh.upsert_comment(pr, f"{MARKER}\n{link_plots(body, plots, prefix)}")
    return f"review comment {comment} {how} on #{pr.number}" + (f"; charts at {prefix}" if prefix else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hftlab.analysis.github", description=__doc__.split("\n\n")[0])
    parser.add_argument("body", type=Path, help="the review (Markdown)")
    parser.add_argument("--plots", type=Path, default=Path("reports/diff"), help="folder of its PNG charts")
    args = parser.parse_args(argv)
    print(publish(args.body, args.plots, dict(os.environ), Path.cwd()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
