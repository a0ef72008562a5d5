#!/usr/bin/env python3
"""Real-GPU check: run on a host with an NVIDIA GPU and a loaded driver.

    python3 tests/gpu/check_real_gpu.py [--out DIR]     (or: make gpu-check)

1. Runs the module gpuforge.cluster.nvidia_gpu_facts against localhost (through
   `ansible`, as a playbook would) and compares every GPU with what nvidia-smi
   says directly (`--query-gpu` CSV, `-L`, the banner's CUDA version).
2. Runs the nvidia_driver role's read-only checks against localhost
   (tests/gpu/driver_checks.yml: platform variables, driver/GPU compatibility, Secure
   Boot state, kernel module and nvidia-smi state, reboot reasons) and asserts that
   the driver is in force and no reboot is pending.
3. Computes the node labels and, on MIG-capable GPUs, the MIG profiles with the
   collection's filters, and records them.

Writes gpu-check.json (to --out or $OUT, else artifacts/) and exits non-zero on any
mismatch. Needs: nvidia-smi, python3, and ansible-core (the repo's .venv, or any
`ansible` on PATH).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUERY = ["index", "uuid", "name", "pci.bus_id", "memory.total", "mig.mode.current", "driver_version"]
ENV = dict(os.environ, LC_ALL="C.UTF-8", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
           ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
           ANSIBLE_CACHE_PLUGIN="ansible.builtin.memory", ANSIBLE_GATHERING="implicit", ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.json")
LOCAL = ["-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=False, **kw)


def ansible_bin(name):
    for cand in (ROOT / ".venv" / "bin" / name, ROOT / ".venv-gpu" / "bin" / name):
        if cand.exists():
            return str(cand)
    found = shutil.which(name)
    if not found:
        sys.exit(f"gpu-check: {name} not found (make bootstrap, or put ansible-core on PATH)")
    return found


def parse_query_csv(text):
    """`nvidia-smi --query-gpu=... --format=csv[,nounits]` -> [{field: value}], units dropped."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    header = [re.sub(r"\s*\[.*\]$", "", h.strip()) for h in rows[0]]
    return [{h: re.sub(r"\s+(MiB|W|MHz|%)$", "", v.strip()) for h, v in zip(header, row)} for row in rows[1:]]


def parse_direct(query_csv, banner, listing):
    gpus = parse_query_csv(query_csv)
    m = re.search(r"CUDA Version:\s*([0-9.]+)", banner)
    mig, current = {}, None
    for line in listing.splitlines():
        g = re.match(r"GPU (\d+):", line)
        if g:
            current = int(g.group(1))
            mig[current] = []
        d = re.match(r"\s+MIG (\S+)\s+Device\s+\d+:", line)
        if d and current is not None:
            mig[current].append(d.group(1))
    return {"gpus": gpus, "cuda_version": m.group(1) if m else None, "mig_profiles": mig, "list": listing}


def smi_direct():
    """What nvidia-smi says, without our parser."""
    q = run(["nvidia-smi", f"--query-gpu={','.join(QUERY)}", "--format=csv,nounits"])
    if q.returncode != 0:
        sys.exit(f"gpu-check: nvidia-smi --query-gpu failed (rc {q.returncode}): {q.stdout}{q.stderr}")
    return parse_direct(q.stdout, run(["nvidia-smi"]).stdout, run(["nvidia-smi", "-L"]).stdout)


def facts_from_module():
    proc = run([ansible_bin("ansible"), "localhost", *LOCAL, "-m", "gpuforge.cluster.nvidia_gpu_facts"], cwd=ROOT)
    try:
        data = json.loads(proc.stdout)
        return data["plays"][0]["tasks"][0]["hosts"]["localhost"]["ansible_facts"]["nvidia"]
    except (ValueError, KeyError, IndexError):
        sys.exit(f"gpu-check: the facts module did not answer:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


def compare(facts, direct):
    problems = []

    def expect(what, got, want):
        if got != want:
            problems.append(f"{what}: module says {got!r}, nvidia-smi says {want!r}")

    expect("present", facts["present"], True)
    expect("driver_loaded", facts["driver_loaded"], True)
    expect("gpu_count", facts["gpu_count"], len(direct["gpus"]))
    expect("cuda_version", facts["cuda_version"], direct["cuda_version"])
    for want, got in zip(direct["gpus"], facts["gpus"]):
        i = int(want["index"])
        expect(f"gpu {i} index", got["index"], i)
        expect(f"gpu {i} uuid", got["uuid"], want["uuid"])
        expect(f"gpu {i} name", got["name"], want["name"])
        expect(f"gpu {i} pci_bus_id", got["pci_bus_id"].upper(), want["pci.bus_id"].upper())
        expect(f"gpu {i} memory_total_mib", got["memory_total_mib"], int(want["memory.total"]))
        expect(f"gpu {i} mig_enabled", got["mig_enabled"], want["mig.mode.current"] == "Enabled")
        expect("driver_version", facts["driver_version"], want["driver_version"])
        expect(f"gpu {i} mig devices", len(got["mig_devices"]), len(direct["mig_profiles"].get(i, [])))
        if got["mig_devices"]:
            expect(f"gpu {i} mig profiles", sorted(d.get("profile") or "?" for d in got["mig_devices"]),
                   sorted(direct["mig_profiles"].get(i, [])))
    if len(facts["pci_devices"]) < len(direct["gpus"]):
        problems.append(f"pci_devices lists {len(facts['pci_devices'])} devices for {len(direct['gpus'])} GPUs")
    return problems


def driver_checks(out_dir):
    result_file = out_dir / "driver-checks.json"
    proc = run([ansible_bin("ansible-playbook"), *LOCAL,
                str(ROOT / "tests" / "gpu" / "driver_checks.yml"), "-e", f"gpu_check_result={result_file}"], cwd=ROOT)
    ok = proc.returncode == 0 and result_file.is_file()
    data = json.loads(result_file.read_text()) if result_file.is_file() else None
    return ok, data, (proc.stdout[-6000:] + proc.stderr[-2000:]) if not ok else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "artifacts"))
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not shutil.which("nvidia-smi"):
        sys.exit("gpu-check: nvidia-smi is not installed: this check needs a real GPU host")

    direct = smi_direct()
    facts = facts_from_module()
    problems = compare(facts, direct)
    checks_ok, checks, checks_log = driver_checks(out_dir)
    if not checks_ok:
        problems.append("driver checks failed:\n" + checks_log)
    report = {"ok": not problems, "problems": problems, "nvidia_smi": direct, "facts": facts,
              "driver_checks": checks}
    (out_dir / "gpu-check.json").write_text(json.dumps(report, indent=1, default=str))
    for gpu in facts.get("gpus", []):
        print(f"GPU {gpu['index']}: {gpu['name']} {gpu['memory_total_mib']} MiB, MIG {gpu['mig_enabled']}, "
              f"{len(gpu['mig_devices'])} MIG devices, {gpu['pci_bus_id']}")
    print(f"driver {facts.get('driver_version')}, CUDA {facts.get('cuda_version')}")
    if checks:
        print(f"driver checks: {json.dumps(checks, default=str)}")
    for p in problems:
        print(f"MISMATCH {p}")
    print("gpu-check: OK" if not problems else f"gpu-check: {len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
