"""Verifier of gpuforge.cluster.preflight on the two lab hosts of molecule/preflight.

Reads the controller report (preflight_report_path, in the scenario's ephemeral
directory) and proves that the hosts were not changed, against the snapshot that
prepare.yml took before converge.
"""

import json
import os
from pathlib import Path

import pytest
import testinfra

HOSTS = ["gf-mol-preflight-1", "gf-mol-preflight-2"]
CONTROL_PLANE = "gf-mol-preflight-1"
SNAPSHOT = "/var/tmp/gf-preflight-snapshot"
HOST_CHECKS = ["os", "architecture", "cpus", "memory", "disk", "swap", "cgroup", "clock", "time_sync", "python",
               "node_ip", "hostname_unique", "node_ip_unique"]
INVENTORY_HOST_CHECKS = ["host_in_cluster", "node_name", "ansible_host_unique", "variables"]
INVENTORY_CHECKS = ["group_not_empty", "control_plane_odd"]
RECORD_KEYS = {"host", "check", "variable", "value", "expected", "ok", "severity", "message"}


def report_path():
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if ephemeral:
        return Path(ephemeral) / "preflight-report.json"
    found = sorted(Path.home().glob(".cache/molecule/*/preflight/preflight-report.json"))
    assert found, "MOLECULE_EPHEMERAL_DIRECTORY is not set and no report was found"
    return found[-1]


@pytest.fixture(scope="module")
def report():
    path = report_path()
    assert path.is_file(), f"the preflight report {path} was not written"
    return json.loads(path.read_text())


def name(host):
    return host.backend.get_hostname()


def test_report_passed_without_errors_or_warnings(report):
    assert report["ok"] is True
    assert report["errors"] == [] and report["warnings"] == []
    assert report["summary"]["errors"] == 0 and report["summary"]["hosts"] == 2
    assert report["failure_message"] == ""


def test_every_record_is_complete_and_ok(report):
    for rec in report["checks"]:
        assert set(rec) == RECORD_KEYS, rec
        assert rec["ok"] is True, rec["message"]
        assert rec["severity"] in ("error", "warning")
        assert rec["message"].startswith(rec["host"] + ": ")


def test_inventory_checks_are_listed(report):
    checks = {rec["check"] for rec in report["checks"] if rec["host"] == "inventory"}
    assert set(INVENTORY_CHECKS) <= checks


@pytest.mark.parametrize("host_name", HOSTS)
def test_every_check_is_listed_for_each_host(report, host_name):
    checks = [rec["check"] for rec in report["checks"] if rec["host"] == host_name]
    for check in HOST_CHECKS + INVENTORY_HOST_CHECKS:
        assert checks.count(check) == 1, f"{host_name}: {check} appears {checks.count(check)} times"
    assert report["hosts"][host_name] == {"ok": True, "checks": len(checks), "errors": 0, "warnings": 0}


def test_report_matches_the_hosts(host, report):
    records = {rec["check"]: rec for rec in report["checks"] if rec["host"] == name(host)}
    assert records["cpus"]["value"] == int(host.check_output("nproc"))
    assert records["cpus"]["variable"] == (
        "preflight_min_cpus_control_plane" if name(host) == CONTROL_PLANE else "preflight_min_cpus_worker")
    assert records["hostname_unique"]["value"] == host.check_output("hostname")
    assert records["node_ip"]["value"] in host.check_output("hostname -I").split()
    assert records["os"]["value"].startswith("Debian 12")
    # cgroup v1 of this machine is accepted only because the scenario allows it
    assert records["cgroup"]["value"] in (1, 2)


def test_packages_are_unchanged(host):
    before = host.file(f"{SNAPSHOT}/packages.txt").content_string
    now = host.check_output("dpkg-query -W -f '${Package} ${Version}\\n' | sort")
    assert now.strip() == before.strip()


def test_sysctl_and_module_files_are_unchanged(host):
    before = host.file(f"{SNAPSHOT}/config-files.txt").content_string
    now = host.run(
        "find /etc/sysctl.d /etc/modules-load.d -xdev -type f -exec sha256sum {} + 2>/dev/null | sort").stdout
    assert now.strip() == before.strip()
    assert not host.file("/etc/sysctl.d/90-gpuforge.conf").exists
    assert not host.file("/etc/modules-load.d/gpuforge.conf").exists


def test_nothing_in_etc_changed_after_the_snapshot(host):
    # /etc/hostname, /etc/hosts and /etc/resolv.conf are podman's bind mounts.
    changed = host.check_output(
        f"find /etc -xdev -newer {SNAPSHOT}/marker "
        "! -path /etc/hostname ! -path /etc/hosts ! -path /etc/resolv.conf -print"
    )
    assert changed == ""


def test_no_local_facts_were_written(host):
    assert not host.file("/etc/ansible/facts.d").exists


def test_both_hosts_are_reachable():
    for host_name in HOSTS:
        assert testinfra.get_host(f"podman://{host_name}").check_output("true") == ""
