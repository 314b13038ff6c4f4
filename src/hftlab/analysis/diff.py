"""``hftlab diff [BASE] [HEAD]``: what changed between two git revisions, as Markdown for a pull request.

Reads from each side (a git revision, or the working tree when HEAD is omitted): ``params.yaml``, every
YAML file under ``conf/``, and each experiment's committed ``results/<experiment>/summary.csv`` (one
row per run: parameters + metrics) and ``results/dvc_experiment/metrics.json``. Reports configuration
changes key by key, metric changes per experiment (best value) and per run (matched by its parameters)
with deltas, runs added or removed, and PNG charts rendered offline (matplotlib) into ``--plots``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import yaml

from hftlab.errors import HftlabError

METRICS = (
    "net_pnl",
    "sharpe",
    "spread_capture",
    "inventory_pnl",
    "max_drawdown",
    "trades",
    "fill_ratio",
    "maker_share",
    "markout_1s_bps",
)


class Side:
    """Files of one side of the diff: a git revision or the working tree (``rev=None``)."""

    def __init__(self, repo: Path, rev: str | None) -> None:
        self.repo, self.rev = repo, rev
        if rev is not None:
            ok = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=repo, capture_output=True)
            if ok.returncode != 0:
                raise HftlabError(f"git revision {rev!r} not found in {repo}")

    @property
    def label(self) -> str:
        return self.rev or "working tree"

    def files(self, prefix: str) -> list[str]:
        if self.rev is None:
            root = self.repo / prefix
            return (
                sorted(p.relative_to(self.repo).as_posix() for p in root.rglob("*") if p.is_file())
                if root.exists()
                else []
            )
        out = subprocess.run(["git", "ls-tree", "-r", "--name-only", self.rev, "--", prefix], cwd=self.repo,
                             capture_output=True, text=True, check=True)  # fmt: skip
        return sorted(out.stdout.split())

    def read(self, path: str) -> str | None:
        if self.rev is None:
            p = self.repo / path
            return p.read_text() if p.is_file() else None
        out = subprocess.run(["git", "show", f"{self.rev}:{path}"], cwd=self.repo, capture_output=True, text=True)
        return out.stdout if out.returncode == 0 else None


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def config_values(side: Side) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in ["params.yaml", *[f for f in side.files("conf") if f.endswith((".yaml", ".yml"))]]:
        text = side.read(path)
        if text is None:
            continue
        for key, value in _flatten(yaml.safe_load(text) or {}).items():
            values[f"{path}: {key}"] = value
    return values


def experiments(side: Side) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for path in side.files("results"):
        parts = path.split("/")
        if len(parts) == 3 and parts[2] == "summary.csv":
            text = side.read(path) or ""
            out[parts[1]] = [dict(r) for r in csv.DictReader(io.StringIO(text))]
        if len(parts) == 3 and parts[2] == "metrics.json":
            metrics = json.loads(side.read(path) or "{}")
            out[parts[1]] = [{k: str(v) for k, v in metrics.items()}]
    return out


def _num(text: Any) -> float | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _point(row: dict[str, Any]) -> str:
    return ", ".join(f"{k[6:]}={row[k]}" for k in sorted(row) if k.startswith("param.")) or "(single run)"


def _fmt(v: Any) -> str:
    n = _num(v)
    if n is not None:
        return f"{n:.6g}"
    return "" if v in (None, "") else str(v)


def _delta(a: Any, b: Any) -> str:
    x, y = _num(a), _num(b)
    if x is None or y is None:
        return ""
    d = y - x
    rel = f" ({d / abs(x):+.1%})" if x not in (0.0,) else ""
    return f"{d:+.6g}{rel}"


def diff_markdown(repo: Path, base: str, head: str | None, plots: Path | None = None) -> str:
    """The Markdown report of what changed from ``base`` to ``head`` (None = working tree)."""
    a, b = Side(repo, base), Side(repo, head)
    lines = [f"## Experiment diff: `{a.label}` → `{b.label}`", ""]
    lines += _stale_section(repo, head)
    ca, cb = config_values(a), config_values(b)
    changed = sorted(k for k in set(ca) | set(cb) if ca.get(k, "∅") != cb.get(k, "∅"))
    lines += ["### Configuration changes", ""]
    if changed:
        lines += ["| file: key | base | head |", "|---|---|---|"]
        lines += [f"| `{k}` | {_fmt(ca.get(k, '(absent)'))} | {_fmt(cb.get(k, '(absent)'))} |" for k in changed]
    else:
        lines.append("No configuration changes.")
    ea, eb = experiments(a), experiments(b)
    lines += ["", "### Metrics", ""]
    charts: list[tuple[str, list[str], list[float | None], list[float | None]]] = []
    for exp in sorted(set(ea) | set(eb)):
        ra = {_point(r): r for r in ea.get(exp, [])}
        rb = {_point(r): r for r in eb.get(exp, [])}
        lines.append(f"#### {exp}")
        if exp not in ea or exp not in eb:
            lines += [f"Experiment {'added' if exp not in ea else 'removed'} ({len(rb or ra)} runs).", ""]
        added, removed = sorted(set(rb) - set(ra)), sorted(set(ra) - set(rb))
        for label, points in (("added", added), ("removed", removed)):
            if points and exp in ea and exp in eb:
                lines.append(f"Runs {label}: " + "; ".join(f"`{p}`" for p in points))
        common = sorted(set(ra) & set(rb))
        if common:
            lines += ["", "| run | metric | base | head | delta |", "|---|---|---|---|---|"]
            for p in common:
                for m in METRICS:
                    va, vb = ra[p].get(m), rb[p].get(m)
                    if va is None and vb is None:
                        continue
                    if _fmt(va) != _fmt(vb):
                        lines.append(f"| `{p}` | {m} | {_fmt(va)} | {_fmt(vb)} | {_delta(va, vb)} |")
            if lines[-1].startswith("|---"):
                lines[-3:] = ["", "All metrics of the runs in both revisions are unchanged."]
            charts.append(
                (
                    exp,
                    common,
                    [_num(ra[p].get("net_pnl")) for p in common],
                    [_num(rb[p].get("net_pnl")) for p in common],
                )
            )
        lines.append("")
    if plots is not None and charts:
        plots.mkdir(parents=True, exist_ok=True)
        lines += ["### Plots", ""]
        for exp, points, va, vb in charts:
            png = _chart(exp, points, va, vb, a.label, b.label, plots / f"{exp}_net_pnl.png")
            lines.append(f"![{exp} net_pnl]({png.as_posix()})")
        lines.append("")
    return "\n".join(lines) + "\n"


def _stale_section(repo: Path, head: str | None) -> list[str]:
    """Stale results of the head side when it is the working tree or the checked-out commit (another
    revision would need its own checkout): a warning per experiment whose committed results the code,
    config and data of this revision would not give."""
    from hftlab.sweep.stale import stale_results

    if head is not None:
        at = subprocess.run(["git", "rev-parse", head, "HEAD"], cwd=repo, capture_output=True, text=True)
        revs = at.stdout.split()
        if at.returncode != 0 or len(revs) != 2 or revs[0] != revs[1]:
            return ["Stale results: not checked (the head revision is not checked out).", ""]
    verdicts = [v for v in stale_results(repo.resolve() / "results", repo.resolve()) if v.problems]
    if not verdicts:
        return []
    out = ["### ⚠ Stale results", ""]
    out += [f"- **{v.experiment}**: {len(v.problems)} problem(s), e.g. {v.problems[0]}" for v in verdicts]
    return [*out, "", "The metrics below are not what this revision computes: run `dvc repro` "
            "(`hftlab check` lists every run and what changed).", ""]  # fmt: skip


def _chart(
    exp: str, points: list[str], va: list[float | None], vb: list[float | None], la: str, lb: str, path: Path
) -> Path:
    import numpy as np

    from hftlab.analysis import plots as P

    fig, ax = P.plt.subplots(figsize=(max(5, 0.9 * len(points) + 2), 3.5))
    x = np.arange(len(points))
    ax.bar(x - 0.2, [np.nan if v is None else v for v in va], 0.4, label=P.literal(la))
    ax.bar(x + 0.2, [np.nan if v is None else v for v in vb], 0.4, label=P.literal(lb))
    ax.set_xticks(
        x, [P.literal(p.replace("strategy.params.", "")) for p in points], rotation=30, ha="right", fontsize=7
    )
    ax.set_ylabel("net_pnl")
    ax.set_title(P.literal(f"{exp}: net_pnl per run"))
    ax.legend(fontsize=8)
    return P._save(fig, path)
