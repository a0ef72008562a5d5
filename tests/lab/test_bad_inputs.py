"""The bad-input corpus: every broken inventory under tests/bad_inputs/ must fail in preflight.

For each case, `ansible-playbook -i tests/bad_inputs/<case>/hosts.yml site.yml` runs from the
repository root (ANSIBLE_CONFIG=ansible.cfg) against real lab hosts, started once for the
whole corpus:

* gf-corpus-cp1, gf-corpus-w1, gf-corpus-gpu1: a lab ("corpus") from the lab_factory fixture;
* gf-corpus-old1: a lab host whose /etc/os-release and /etc/debian_version say Debian 10;
* gf-corpus-swap1: a lab host whose /proc/swaps shows an active swap area (a read-only bind
  mount of a file; nothing is swapped, and the machine's swap is not touched).

Each case's expected.yml says what must be reported:

    description: what is wrong
    stage: inventory | hosts    # where preflight stops: the localhost play or the host play
    errors: [...]               # substrings of the output or of the report's errors
    report_errors: [...]        # substrings of the report's (per-host) errors
    not_errors: [...]           # substrings that must not be reported
    hosts: [...]                # hosts ("inventory" for the inventory) the report fails
    variables: [...]            # variables named by failed checks
    checked_hosts: [...]        # hosts whose host checks must be in the report anyway
    requires: cgroup_v1         # skip where this machine runs cgroup v2

and every case must: exit non-zero, fail in the preflight task "Fail with every preflight
error" (the node layer never starts), show changed=0 for every host in the recap, and leave
the hosts untouched (checked once after all cases: the common role's files are absent and
nothing in /etc is newer than a marker written before the first case).

The cases run 3 at a time (each with its own fact cache and report); facts are gathered once
per case by preflight itself. As a control, playbooks/preflight.yml also runs with the corpus
lab's own inventory (as `gpuforge lab up` writes it) and must pass with no error or warning.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "tests" / "bad_inputs"
CASES = sorted(p.parent.name for p in CASES_DIR.glob("*/expected.yml"))
LAB = "corpus"
OLD_OS_HOST = "gf-corpus-old1"
SWAP_HOST = "gf-corpus-swap1"
EXTRA_HOSTS = (OLD_OS_HOST, SWAP_HOST)
MARKER = "/run/gf-corpus-marker"
PARALLEL = 3
GOOD = "_lab_inventory"  # not a bad input: the lab's own inventory, which must pass
# Files the common role (node layer) writes: they must never appear.
COMMON_FILES = ("/etc/sysctl.d/90-gpuforge.conf", "/etc/modules-load.d/gpuforge.conf")
RECAP = re.compile(r"^\s*\S*?\s*(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

DEBIAN10_OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 10 (buster)"
NAME="Debian GNU/Linux"
VERSION_ID="10"
VERSION="10 (buster)"
VERSION_CODENAME=buster
ID=debian
HOME_URL="https://www.debian.org/"
"""
PROC_SWAPS = ("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
              "/swapfile                               file\t\t4194300\t\t0\t\t-2\n")


def podman(*args, check=True):
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def machine_cgroup_version():
    return 2 if Path("/sys/fs/cgroup/cgroup.controllers").exists() else 1


def wait_running(name, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = podman("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{name} did not boot in {timeout} s")


def start_extra_host(name, image, network, workdir):
    """A lab-like host (same image, network and options as gpuforge.lab) for one special case."""
    podman("rm", "-f", "-t", "0", name, check=False)
    extra = []
    if name == SWAP_HOST:
        swaps = workdir / "proc-swaps"
        swaps.write_text(PROC_SWAPS)
        extra = ["-v", f"{swaps}:/proc/swaps:ro"]
    podman("run", "-d", "--name", name, "--hostname", name, "--network", network, "--systemd=always",
           "--pull=never", "--no-hosts", "--sysctl", "net.ipv4.ip_forward=1", *extra, image, "/sbin/init")
    wait_running(name)
    if name == OLD_OS_HOST:
        proc = subprocess.run(
            ["podman", "exec", "-i", name, "sh", "-c",
             "rm -f /etc/os-release && cat > /etc/os-release && echo 10.13 > /etc/debian_version"],
            input=DEBIAN10_OS_RELEASE, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def corpus_hosts(lab_factory):
    """The corpus lab (cp1, w1, gpu1) plus the two special hosts; all marked before the first case."""
    lab = lab_factory(LAB, hosts=3, gpu_hosts=1)
    workdir = Path(tempfile.mkdtemp(prefix="gpuforge-corpus-"))
    names = [h["name"] for h in lab["hosts"]]
    try:
        for name in EXTRA_HOSTS:
            start_extra_host(name, lab["image"], lab["network"], workdir)
        names += list(EXTRA_HOSTS)
        for name in names:
            podman("exec", name, "touch", MARKER)
        yield {"lab": lab, "hosts": names, "workdir": workdir}
    finally:
        podman("rm", "-f", "-t", "0", *EXTRA_HOSTS, check=False)
        if not os.environ.get("GPUFORGE_KEEP_CORPUS"):  # set it to keep the outputs and reports
            shutil.rmtree(workdir, ignore_errors=True)


def run_case(case, workdir, inventory=None, playbook="site.yml"):
    """ansible-playbook site.yml with the case's inventory; {rc, output, report or None, seconds}."""
    inventory = inventory or CASES_DIR / case / "hosts.yml"
    out_dir = workdir / case
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / "preflight-report.json"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", NO_COLOR="1",
               PY_COLORS="0", ANSIBLE_CACHE_PLUGIN_CONNECTION=str(out_dir / "facts"),
               ANSIBLE_LOCAL_TEMP=str(out_dir / "tmp"))
    start = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), playbook,
         "-e", f"preflight_report_path={report}"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600,
    )
    seconds = time.monotonic() - start
    output = ANSI.sub("", proc.stdout + proc.stderr)
    data = json.loads(report.read_text()) if report.is_file() else None
    return {"rc": proc.returncode, "output": output, "report": data, "seconds": round(seconds, 1)}


@pytest.fixture(scope="module")
def results(corpus_hosts):
    """Every case, run once, PARALLEL at a time."""
    runnable = [c for c in CASES if load_expected(c).get("requires") != "cgroup_v1" or machine_cgroup_version() == 1]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = {case: pool.submit(run_case, case, corpus_hosts["workdir"]) for case in runnable}
        # The control: the lab's own inventory (gpuforge.lab format + inventories/lab/group_vars) passes.
        futures[GOOD] = pool.submit(run_case, GOOD, corpus_hosts["workdir"],
                                    inventory=corpus_hosts["lab"]["inventory"], playbook="playbooks/preflight.yml")
        out = {case: f.result() for case, f in futures.items()}
    total = time.monotonic() - start
    timings = ", ".join(f"{c} {r['seconds']}s" for c, r in out.items())
    print(f"\nbad-input corpus: {len(out)} cases in {total:.0f} s ({timings})")
    (corpus_hosts["workdir"] / "timings.json").write_text(json.dumps(
        {"total_s": round(total, 1), "cases": {c: r["seconds"] for c, r in out.items()}}, indent=1))
    return out


def load_expected(case):
    return yaml.safe_load((CASES_DIR / case / "expected.yml").read_text())


def recap(output):
    hosts = {}
    for line in output.splitlines():
        m = RECAP.match(line)
        if m:
            hosts[m.group(1)] = {"changed": int(m.group(3)), "unreachable": int(m.group(4)), "failed": int(m.group(5))}
    return hosts


def test_the_corpus_is_complete():
    assert len(CASES) >= 18, CASES
    for case in CASES:
        expected = load_expected(case)
        assert expected.get("description") and expected.get("errors"), case
        assert expected.get("stage") in ("inventory", "hosts"), case
        assert (CASES_DIR / case / "hosts.yml").is_file(), case


@pytest.mark.parametrize("case", CASES)
def test_bad_input_fails_in_preflight(case, results):
    expected = load_expected(case)
    if expected.get("requires") == "cgroup_v1" and machine_cgroup_version() != 1:
        pytest.skip("this machine runs cgroup v2: lab hosts cannot show cgroup v1")
    res = results[case]
    out, report = res["output"], res["report"]
    tail = out[-5000:]

    assert res["rc"] != 0, f"{case}: site.yml succeeded:\n{tail}"
    # The failure is preflight's single failure, and no later layer started.
    assert "TASK [gpuforge.cluster.preflight : Fail with every preflight error]" in out, tail
    assert "Preflight found" in out, tail
    assert "PLAY [Node" not in out, f"{case}: the node layer started:\n{tail}"
    # stage inventory: stopped in the localhost play, before any host was contacted
    gathered = "TASK [gpuforge.cluster.preflight : Gather fresh facts]" in out
    assert gathered == (expected["stage"] == "hosts"), f"{case}: expected to stop in the {expected['stage']} stage"

    assert report is not None, f"{case}: no preflight report was written:\n{tail}"
    assert report["ok"] is False
    errors = report["errors"]
    searchable = out + "\n" + "\n".join(errors)
    for text in expected["errors"]:
        assert text in searchable, f"{case}: {text!r} not reported; errors:\n" + "\n".join(errors)
    for text in expected.get("report_errors", []):
        assert any(text in e for e in errors), f"{case}: {text!r} not in the report; errors:\n" + "\n".join(errors)
    for text in expected.get("not_errors", []):
        assert text not in searchable, f"{case}: {text!r} should not be reported"
    for host in expected.get("hosts", []):
        assert host in report["summary"]["failed_hosts"], (case, host, report["summary"])
    failed_vars = {c["variable"] for c in report["checks"] if not c["ok"] and c["severity"] == "error"}
    for variable in expected.get("variables", []):
        assert variable in failed_vars, (case, variable, sorted(failed_vars))
    for host in expected.get("checked_hosts", []):
        assert [c for c in report["checks"] if c["host"] == host and c["check"] == "os"], (case, host)
    # Every error is one sentence that names its host.
    for c in report["checks"]:
        assert c["message"].startswith(c["host"] + ": "), c

    hosts = recap(out)
    assert hosts, f"{case}: no play recap:\n{tail}"
    assert all(h["changed"] == 0 for h in hosts.values()), f"{case}: changes reported: {hosts}"


def test_the_lab_inventory_passes_preflight(results):
    res = results[GOOD]
    assert res["rc"] == 0, res["output"][-5000:]
    report = res["report"]
    assert report["ok"] is True and report["errors"] == [], report["errors"]
    assert report["warnings"] == [], report["warnings"]
    assert report["summary"]["hosts"] == 3
    assert all(h["changed"] == 0 for h in recap(res["output"]).values())


def test_hosts_are_untouched(results, corpus_hosts):
    assert results
    for name in corpus_hosts["hosts"]:
        for path in COMMON_FILES:
            assert podman("exec", name, "test", "-e", path, check=False).returncode == 1, f"{name}: {path} exists"
        newer = podman("exec", name, "find", "/etc", "-xdev", "-newer", MARKER,
                       "!", "-path", "/etc/hostname", "!", "-path", "/etc/hosts", "!", "-path", "/etc/resolv.conf",
                       "-print", check=False).stdout.strip()
        assert newer == "", f"{name}: changed after the first case: {newer}"
