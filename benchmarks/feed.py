"""Benchmark: the Historical Input Feeder against a plain ``pyarrow.parquet.read_table`` of the same files.

Builds (once, cached in --dir) a ~10M-row synthetic dataset, then measures each case in --repeats
fresh processes (one call each, as a backtest feeds once per process; warm page cache for both; the
median is reported). Fresh processes matter here: first-touch page faults dominate on this VM and a
reused allocator would hide them from one side only.

- baseline: ``pq.read_table`` of every partition file (what any reader pays to get the columns);
- feeder:   ``load_events`` of the whole dataset (hash check + read + merge + flags -> event_dtype).

Prints a table and ends with ``feed ratio=<feeder rows/s / baseline rows/s> aim=0.7``. The line above
it reports peak RSS growth of the feeder relative to the final event array (aim <= 2.5).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

CHILD = r"""
import json, sys, time
from pathlib import Path
import pyarrow.parquet as pq
from hftlab.feed import DatasetRef
from hftlab.storage import Catalog
from hftlab.storage.schema import FEEDS

case, root = sys.argv[1], sys.argv[2]
catalog = Catalog(root)
dataset = catalog.resolve("bench")
files = [dataset.path / p.path for p in dataset.manifest.partitions]
feeds = tuple(f for f in FEEDS if f in dataset.manifest.feeds)
if case == "feeder":  # load the cached numba kernels outside the timed region
    DatasetRef("bench", end=dataset.manifest.start_ns + 1).load(catalog)
def status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])


# Reset the peak (VmHWM) to the current RSS: resolving the dataset above may have peaked higher than the
# case itself, which made ru_maxrss growth read 0 for the baseline.
Path("/proc/self/clear_refs").write_text("5")
rss0 = status_kib("VmRSS")
t0 = time.perf_counter()
if case == "baseline":
    tables = [pq.read_table(f) for f in files]
    rows, nbytes = sum(t.num_rows for t in tables), sum(t.nbytes for t in tables)
else:
    fed = DatasetRef("bench", feeds=feeds).load(catalog)
    rows, nbytes = len(fed.events), fed.events.nbytes
seconds = time.perf_counter() - t0
rss1 = status_kib("VmHWM")
print(json.dumps({"seconds": seconds, "rows": rows, "nbytes": nbytes, "peak_growth": (rss1 - rss0) * 1024}))
"""


def build(root: Path, rows_target: int) -> None:
    from hftlab.ingest.synthetic import SynthParams, generate
    from hftlab.storage import Catalog

    catalog = Catalog(root)
    if any(d.id == "bench" for d in catalog.datasets()):
        return
    # About 1.85 canonical rows per synthetic market event.
    rate = rows_target / 1.85 / 86_400
    dataset, _ = catalog.promote(generate(SynthParams(seed=11, days=1.0, events_per_second=rate)), "bench")
    print(f"built dataset: {dataset.manifest.rows:,} rows in {len(dataset.manifest.partitions)} files", flush=True)


def measure(case: str, root: Path, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CHILD, case, str(root)], check=True, capture_output=True, text=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="target dataset rows (default 10M)")
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per case (median)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "hftlab-bench-feed")
    args = parser.parse_args()
    root = args.dir / f"rows-{args.rows}"
    build(root, args.rows)
    base = measure("baseline", root, args.repeats)
    feed = measure("feeder", root, args.repeats)
    mib = 1 / (1 << 20)
    print(f"{'case':10} {'rows':>12} {'seconds':>9} {'Mrows/s':>9} {'peak RSS growth MiB':>20} {'output MiB':>11}")
    for name, r in (("read_table", base), ("feeder", feed)):
        print(
            f"{name:10} {r['rows']:>12,} {r['seconds']:>9.3f} {r['rows'] / r['seconds'] / 1e6:>9.1f} "
            f"{r['peak_growth'] * mib:>20.0f} {r['nbytes'] * mib:>11.0f}"
        )
    ratio = (feed["rows"] / feed["seconds"]) / (base["rows"] / base["seconds"])
    print(f"feed_peak_rss ratio={feed['peak_growth'] / feed['nbytes']:.2f} aim=2.5 (peak RSS growth / event array)")
    print(f"feed ratio={ratio:.2f} aim=0.7")


if __name__ == "__main__":
    main()
