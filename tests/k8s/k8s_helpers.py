"""Helpers the tests under tests/k8s import: `from k8s_helpers import wait_for, ansible_playbook, recap`.

They live here, not in conftest.py: a test module that imports `conftest` gets whichever
conftest.py pytest imported last (tests/unit's or tests/lab's when several folders are collected
together), so the name is unique to this folder. Fixtures stay in conftest.py, which puts this
folder on sys.path (whatever pytest's import mode).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The CNI pins (tests/k8s/cni_versions.env, which cni_bundle.sh reads too) and the registry the CNI tests
# mirror images to.
CNI_VERSIONS = dict(line.split("=", 1) for line in (ROOT / "tests" / "k8s" / "cni_versions.env").read_text().splitlines()
                    if line and not line.startswith("#"))
CNI_MIRROR = "mirror.example.internal:5000"


def wait_for(what, check, timeout=60):
    """check()'s first true value, polled every 0.25 s; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def ansible_playbook(inventory, bin_dir, playbook, *extra, timeout=600):
    """ansible-playbook from the repo root with its ansible.cfg, the harness binaries first on PATH."""
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "LC_ALL": "C.UTF-8"}
    return subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def recap(output):
    """{host: {ok, changed, failed, ...}} of the PLAY RECAP."""
    out = {}
    for line in output.split("PLAY RECAP")[-1].splitlines():
        host, _, counts = line.partition(" : ")
        pairs = [p.split("=") for p in counts.split()]
        if counts and all(len(p) == 2 and p[1].isdigit() for p in pairs):
            out[host.strip()] = {k: int(v) for k, v in pairs}
    return out
