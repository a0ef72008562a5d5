#!/usr/bin/env python3
"""Times site.yml on lab clusters of several sizes (a benchmark, not a test).

For each size and run: fresh lab hosts, a full converge of site.yml, then a
no-op re-run (everything already converged). Reports medians per size and the
ratio of the largest to the smallest size as JSON.

    python scripts/benchmark.py --sizes 3 12 --runs 3 --output artifacts/bench.json
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpuforge import lab  # noqa: E402


def run_site(inventory, summary_path):
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "gpuforge.cli", "run", "site.yml", "-i", str(inventory),
         "--summary", str(summary_path), "--quiet"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"site.yml failed (rc {proc.returncode})")
    summary = json.loads(Path(summary_path).read_text())
    changed = sum(h["changed"] for h in summary["hosts"].values())
    return elapsed, changed


def measure(size, gpu_hosts, runs, workdir):
    inv_dir = Path(workdir) / f"inv-{size}"
    inv_dir.mkdir(parents=True, exist_ok=True)
    gv = inv_dir / "group_vars"
    if not gv.exists():
        gv.symlink_to(ROOT / "inventories" / "lab" / "group_vars")
    converge, noop, noop_changed = [], [], []
    control_planes = 3 if size >= 5 else 1
    for i in range(runs):
        lab.down(name="bench")
        lab.up(name="bench", hosts=size, gpu_hosts=gpu_hosts, control_planes=control_planes,
               inventory=inv_dir / "hosts.yml")
        t, _ = run_site(inv_dir, Path(workdir) / f"s{size}-{i}-converge.json")
        converge.append(round(t, 1))
        t, changed = run_site(inv_dir, Path(workdir) / f"s{size}-{i}-noop.json")
        noop.append(round(t, 1))
        noop_changed.append(changed)
        print(f"size {size} run {i + 1}/{runs}: converge {converge[-1]} s, no-op {noop[-1]} s "
              f"(changed {changed})", file=sys.stderr, flush=True)
    lab.down(name="bench")
    return {
        "hosts": size,
        "control_planes": control_planes,
        "gpu_hosts": gpu_hosts,
        "converge_s": converge,
        "noop_s": noop,
        "noop_changed": noop_changed,
        "converge_median_s": statistics.median(converge),
        "noop_median_s": statistics.median(noop),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[3, 12])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--output", default="artifacts/bench.json")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="gpuforge-bench-") as workdir:
        for size in args.sizes:
            results.append(measure(size, max(1, size // 4), args.runs, workdir))
    small, large = results[0], results[-1]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "runs": args.runs,
        "results": results,
        "ratio": {
            "sizes": f"{large['hosts']}/{small['hosts']}",
            "converge": round(large["converge_median_s"] / small["converge_median_s"], 2),
            "noop": round(large["noop_median_s"] / small["noop_median_s"], 2),
        },
    }
    out = ROOT / args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
