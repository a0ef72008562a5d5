"""Verifier of gpuforge.cluster.common on the two lab hosts of molecule/common.

Files are checked always; values in force only where the host allows them. Where
the host does not (a podman container: no loadable modules, read-only /proc/sys,
no CAP_SYS_TIME), the role's report (/etc/ansible/facts.d/gpuforge_common.fact)
must say so, and must not claim anything the host contradicts.
"""

import functools
import json

import pytest
import testinfra

HOSTS = ["gf-mol-common-1", "gf-mol-common-2"]
CONTROL_PLANE = "gf-mol-common-1"  # prepare.yml put a swap entry in its /etc/fstab
NTP_SERVERS = ["ntp1.gpuforge.test", "ntp2.gpuforge.test"]  # molecule.yml group_vars
PACKAGES = [
    "ca-certificates", "curl", "gnupg", "conntrack", "socat", "ethtool", "iptables", "ipset",
    "kmod", "procps", "jq", "rsync", "python3-apt", "dbus", "chrony",
]
SYSCTLS = {
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
    "net.ipv4.ip_forward": "1",
    "fs.inotify.max_user_instances": "8192",
    "fs.inotify.max_user_watches": "524288",
    "vm.max_map_count": "262144",
}


def name(host):
    return host.backend.get_hostname()


def lines(host, path):
    """Non-comment, non-empty lines of a file."""
    content = host.file(path).content_string
    return [line.strip() for line in content.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def in_container(host):
    return host.run("systemd-detect-virt --container").rc == 0


@pytest.fixture
def report(host):
    f = host.file("/etc/ansible/facts.d/gpuforge_common.fact")
    assert f.is_file
    return json.loads(f.content_string)


@functools.lru_cache(maxsize=None)
def ipv4(hostname):
    other = testinfra.get_host("podman://" + hostname)
    out = other.check_output("ip -4 -o route get 1.1.1.1")
    return out.split(" src ")[1].split()[0]


# --- packages ---------------------------------------------------------------------

def test_base_packages_installed(host):
    out = host.run("dpkg-query -W -f='${Package} ${db:Status-Status}\\n' " + " ".join(PACKAGES))
    installed = {line.split()[0] for line in out.stdout.splitlines() if line.endswith(" installed")}
    assert sorted(set(PACKAGES) - installed) == []


# --- kernel modules ---------------------------------------------------------------

def test_modules_persisted(host):
    f = host.file("/etc/modules-load.d/gpuforge.conf")
    assert f.user == "root" and f.mode == 0o644
    assert "Ansible managed" in f.content_string
    assert lines(host, f.path) == ["overlay", "br_netfilter"]


def test_modules_loaded_or_reported(host, report):
    section = report["kernel_modules"]
    if host.file("/proc/modules").exists and host.file("/lib/modules/" + host.check_output("uname -r")).is_directory:
        assert section["loadable"] is True
        modules = host.check_output("cut -d' ' -f1 /proc/modules").split()
        assert {"overlay", "br_netfilter"} <= set(modules)
    else:
        assert section["loadable"] is False
        assert section["not_loaded"] == ["overlay", "br_netfilter"]
        assert "/proc/modules" in section["reason"]
        assert any(item.startswith("kernel modules not loaded") for item in report["not_applied"])


# --- sysctls ----------------------------------------------------------------------

def test_sysctls_persisted(host):
    f = host.file("/etc/sysctl.d/90-gpuforge.conf")
    assert f.user == "root" and f.mode == 0o644
    assert "Ansible managed" in f.content_string
    persisted = dict(line.split(" = ", 1) for line in lines(host, f.path))
    assert persisted == SYSCTLS


def test_ip_forward_in_force(host, report):
    """net.* sysctls are per network namespace: the lab sets ip_forward per host, so it is in force."""
    assert host.sysctl("net.ipv4.ip_forward") == 1
    assert "net.ipv4.ip_forward" not in report["sysctls"]["not_in_force"]


def test_sysctl_report_tells_the_truth(host, report):
    """Every key the report calls not in force really is not, with the value it states; the others are."""
    script = "; ".join(
        "if [ -e {p} ]; then echo \"{k} $(cat {p})\"; else echo {k}; fi".format(k=k, p="/proc/sys/" + k.replace(".", "/"))
        for k in SYSCTLS
    )
    actual = {}
    for line in host.check_output(script).splitlines():
        key, _, value = line.partition(" ")
        actual[key] = " ".join(value.split()) or None
    not_in_force = report["sysctls"]["not_in_force"]
    for key, wanted in SYSCTLS.items():
        if key in not_in_force:
            assert not_in_force[key] == {"expected": wanted, "actual": actual[key]}
            assert actual[key] != wanted
        else:
            assert actual[key] == wanted, key
    if "ro" in host.check_output("findmnt -no OPTIONS /proc/sys").split(","):
        assert report["sysctls"]["applied"] is False
        assert report["sysctls"]["reason"] == "/proc/sys is mounted read-only"
    else:
        # Writable /proc/sys: applied, except in a container (common_sysctl_apply_in_container is false).
        assert report["sysctls"]["applied"] is not in_container(host)


# --- swap -------------------------------------------------------------------------

def test_swap_target_masked(host):
    assert host.run("systemctl is-enabled swap.target").stdout.strip() == "masked"


def test_fstab_has_no_active_swap(host):
    for line in lines(host, "/etc/fstab"):
        fields = line.split()
        assert not (len(fields) >= 3 and fields[2] == "swap"), line


def test_fstab_swap_entry_commented_out(host):
    """prepare.yml put a swap entry in the control plane's fstab only: it is commented out, not removed."""
    content = host.file("/etc/fstab").content_string.splitlines()
    if name(host) == CONTROL_PLANE:
        assert "# /swapfile none swap sw 0 0" in content
    else:
        assert not any("swap" in line for line in content)


def test_swap_off_or_reported(host, report):
    active = [line for line in host.file("/proc/swaps").content_string.splitlines()[1:] if line.strip()]
    assert report["swap"]["active"] is bool(active)
    if active:
        assert in_container(host), "swap still active on a host that can switch it off"
        assert any(item.startswith("swap still active") for item in report["not_applied"])


# --- time sync --------------------------------------------------------------------

def test_chrony_config(host):
    f = host.file("/etc/chrony/chrony.conf")
    assert f.user == "root" and f.mode == 0o644
    assert "Ansible managed" in f.content_string
    sources = [line for line in lines(host, f.path) if line.split()[0] in ("server", "pool", "peer")]
    assert sources == ["server ntp1.gpuforge.test iburst prefer", "server ntp2.gpuforge.test iburst"]
    assert host.run("chronyd -p -f /etc/chrony/chrony.conf").rc == 0


def test_chrony_enabled(host):
    assert host.service("chrony").is_enabled


def test_chrony_running_or_reported(host, report):
    section = report["time_sync"]
    assert section["servers"] == NTP_SERVERS
    assert section["enabled"] is True
    if in_container(host):
        # ConditionCapability=CAP_SYS_TIME: systemd skips chronyd; the role says so instead of lying.
        assert not host.service("chrony").is_running
        assert section["started"] is False
        assert "CAP_SYS_TIME" in section["reason"]
        assert any(item.startswith("chrony not started") for item in report["not_applied"])
    else:
        assert host.service("chrony").is_running
        assert section["started"] is True


# --- hostname and /etc/hosts --------------------------------------------------------

def test_hostname(host, report):
    assert host.check_output("hostname") == name(host)
    assert host.check_output("hostnamectl --static") == name(host)
    assert report["hostname"] == {"managed": True, "wanted": name(host), "actual": name(host), "reason": None}


def test_etc_hosts_localhost_kept(host):
    entries = lines(host, "/etc/hosts")
    assert any(line.split()[0] == "127.0.0.1" and "localhost" in line.split()[1:] for line in entries)
    assert any(line.split()[0] == "::1" and "localhost" in line.split()[1:] for line in entries)


def test_etc_hosts_block(host):
    content = host.file("/etc/hosts").content_string
    begin = "# BEGIN gpuforge cluster hosts (managed by Ansible)"
    end = "# END gpuforge cluster hosts (managed by Ansible)"
    assert content.count(begin) == 1 and content.count(end) == 1
    block = content.split(begin)[1].split(end)[0]
    entries = [line.split() for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert entries == [[ipv4(h), h] for h in HOSTS]


@pytest.mark.parametrize("other", HOSTS)
def test_cluster_names_resolve_from_etc_hosts(host, other):
    assert host.check_output("getent hosts %s", other).split()[0] == ipv4(other)


# --- limits -----------------------------------------------------------------------

def test_pam_limits(host):
    f = host.file("/etc/security/limits.d/90-gpuforge.conf")
    assert f.user == "root" and f.mode == 0o644
    assert "Ansible managed" in f.content_string
    entries = [line.split() for line in lines(host, f.path)]
    for domain in ("*", "root"):
        assert [domain, "-", "nofile", "1048576"] in entries
        assert [domain, "-", "nproc", "unlimited"] in entries
        assert [domain, "-", "memlock", "unlimited"] in entries


def test_systemd_default_limits(host):
    f = host.file("/etc/systemd/system.conf.d/90-gpuforge.conf")
    assert f.mode == 0o644
    assert lines(host, f.path) == ["[Manager]", "DefaultLimitMEMLOCK=infinity", "DefaultLimitNOFILE=1048576"]
    # In force: systemd was re-executed after the drop-in changed.
    shown = host.check_output("systemctl show -p DefaultLimitNOFILE -p DefaultLimitMEMLOCK").splitlines()
    assert sorted(shown) == ["DefaultLimitMEMLOCK=infinity", "DefaultLimitNOFILE=1048576"]


# --- capabilities -----------------------------------------------------------------

def test_report_describes_the_host(host, report):
    assert report["role"] == "gpuforge.cluster.common"
    assert report["container"] is in_container(host)
    if report["container"]:
        assert report["container_type"] == host.check_output("systemd-detect-virt --container")
    assert report["etc_hosts"] == {"managed": True, "hosts": HOSTS, "without_address": []}
