#!/usr/bin/env python3
"""Times the Kubernetes test harness (a benchmark, not a test).

For each run: start a harness with the default node set (tests/k8s/nodes.yml), record the
time each component took to become ready, then time the stop. Also times a warm
tests/k8s/build.sh (a no-op when the cache is current). Reports medians as JSON.

    python scripts/benchmark_k8s.py --runs 5 --output artifacts/bench-k8s.json
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpuforge import k8s_harness  # noqa: E402


def one_run(index):
    marks = []
    start = time.monotonic()
    harness = k8s_harness.Harness.start(f"bench{index}", build=False,
                                        progress=lambda msg: marks.append((time.monotonic() - start, msg)))
    started = time.monotonic() - start
    stop_start = time.monotonic()
    harness.stop()
    return {"start_s": round(started, 2), "stop_s": round(time.monotonic() - stop_start, 2),
            "steps": [{"at_s": round(t, 2), "step": m} for t, m in marks]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--output", default="artifacts/bench-k8s.json")
    args = ap.parse_args()

    build_start = time.monotonic()
    subprocess.run(["bash", str(k8s_harness.BUILD_SCRIPT)], check=True, capture_output=True)
    warm_build = time.monotonic() - build_start

    runs = [one_run(i) for i in range(args.runs)]
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "versions": k8s_harness.versions(),
        "nodes": [n.name for n in k8s_harness.load_node_set()],
        "warm_build_s": round(warm_build, 2),
        "runs": runs,
        "median_start_s": round(statistics.median(r["start_s"] for r in runs), 2),
        "median_stop_s": round(statistics.median(r["stop_s"] for r in runs), 2),
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"harness start: median {result['median_start_s']} s over {args.runs} runs "
          f"({', '.join(str(r['start_s']) for r in runs)}); stop: median {result['median_stop_s']} s; "
          f"warm build {result['warm_build_s']} s -> {out}")


if __name__ == "__main__":
    main()
