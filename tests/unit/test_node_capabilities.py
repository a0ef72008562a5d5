"""Unit tests for gpuforge.cluster.node_capabilities and its parsers.

The inputs are recorded file contents and command outputs of real hosts: a Debian 12
machine with hybrid cgroups (and its podman lab containers), and Ubuntu/Debian hosts
with cgroup v2, swap and loaded NVIDIA modules.
"""

import json
import os
from unittest import mock

import pytest


from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.module_utils import node_capabilities as nc  # noqa: E402
from ansible_collections.gpuforge.cluster.plugins.modules import node_capabilities as module  # noqa: E402

# --- recorded inputs --------------------------------------------------------------

SWAPS_NONE = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"

SWAPS_ACTIVE = (
    "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    "/swap.img                               file\t\t4194300\t\t0\t\t-2\n"
    "/dev/dm-1                               partition\t8003580\t\t1024\t\t-3\n"
    "/var/swap\\040file                       file\t\t1048572\t\t0\t\t-4\n"
)

PROC_MODULES = (
    "nvidia_uvm 1437696 0 - Live 0x0000000000000000 (POE)\n"
    "nvidia_drm 122880 0 - Live 0x0000000000000000 (POE)\n"
    "nvidia 56717312 2 nvidia_uvm,nvidia_drm, Live 0x0000000000000000 (POE)\n"
    "br_netfilter 32768 0 - Live 0x0000000000000000\n"
    "bridge 311296 1 br_netfilter, Live 0x0000000000000000\n"
    "stp 16384 1 bridge, Live 0x0000000000000000\n"
    "llc 16384 2 bridge,stp, Live 0x0000000000000000\n"
    "overlay 151552 12 - Live 0x0000000000000000\n"
)

MODULES_BUILTIN = (
    "kernel/arch/x86/crypto/aesni-intel.ko\n"
    "kernel/fs/ext4/ext4.ko\n"
    "kernel/drivers/char/ipmi/ipmi_msghandler.ko\n"
    "kernel/net/ipv4/netfilter/ip_tables.ko\n"
)

# Debian 12 machine (kernel booted with hybrid cgroups): v1 controllers + cgroup2 at unified/.
MOUNTINFO_HYBRID = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# A podman lab container on that machine: it sees only the v1 controllers.
MOUNTINFO_LEGACY = """\
90 80 0:50 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755
91 90 0:29 /libpod_parent/libpod-13ae /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu
94 90 0:32 /libpod_parent/libpod-13ae /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
99 90 0:37 /libpod_parent/libpod-13ae /sys/fs/cgroup/systemd ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,name=systemd
100 99 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
"""

# Debian 12 / Ubuntu 22.04+ default: cgroup v2 only.
MOUNTINFO_UNIFIED = """\
22 29 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 22 0:25 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:10 - pstore pstore rw
"""

MOUNTINFO_NONE = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
"""

PID1_ENVIRON_PODMAN = b"TERM=xterm\0container=podman\0PATH=/usr/local/sbin:/usr/bin\0HOSTNAME=gf-lab-1\0HOME=/root\0"
PID1_ENVIRON_HOST = b"HOME=/\0init=/sbin/init\0NETWORK_SKIP_ENSLAVED=\0TERM=linux\0BOOT_IMAGE=/vmlinuz\0"

# /proc/1/status (excerpt) of the machine / a privileged container, and of an unprivileged podman container.
STATUS_ALL_CAPS = "Name:\tsystemd\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapBnd:\t000001fffeffffff\n"
STATUS_PODMAN = "Name:\tsystemd\nCapInh:\t0000000000000000\nCapPrm:\t00000000800405fb\nCapBnd:\t00000000800405fb\n"

CONTAINERENV = 'engine="podman-4.3.1"\nname="gf-lab-1"\nid="13aef890f9d5"\nimage="localhost/gpuforge-lab:bookworm"\nrootless=0\n'


# --- parsers ----------------------------------------------------------------------

class TestSwaps:
    def test_header_only_means_no_swap(self):
        assert nc.parse_swaps(SWAPS_NONE) == []

    def test_empty_or_missing_file(self):
        assert nc.parse_swaps("") == []
        assert nc.parse_swaps(None) == []

    def test_active_swap_areas(self):
        devices = nc.parse_swaps(SWAPS_ACTIVE)
        assert [d["name"] for d in devices] == ["/swap.img", "/dev/dm-1", "/var/swap file"]
        assert devices[0] == {"name": "/swap.img", "type": "file", "size_kib": 4194300, "used_kib": 0, "priority": -2}
        assert devices[1]["type"] == "partition"
        assert devices[1]["used_kib"] == 1024


class TestModules:
    def test_proc_modules(self):
        assert nc.parse_proc_modules(PROC_MODULES) == [
            "nvidia_uvm", "nvidia_drm", "nvidia", "br_netfilter", "bridge", "stp", "llc", "overlay",
        ]

    def test_modules_builtin(self):
        assert nc.parse_modules_builtin(MODULES_BUILTIN) == ["aesni_intel", "ext4", "ipmi_msghandler", "ip_tables"]

    @pytest.mark.parametrize("path,name", [
        ("kernel/net/bridge/br_netfilter.ko", "br_netfilter"),
        ("kernel/fs/overlayfs/overlay.ko.zst", "overlay"),
        ("kernel/drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.ko.xz", "mlx5_core"),
        ("kernel/arch/x86/crypto/aesni-intel.ko", "aesni_intel"),
    ])
    def test_module_name(self, path, name):
        assert nc.module_name(path) == name

    def test_loadable(self):
        assert nc.kernel_modules_status(True, True, False, "6.1.0-28-amd64") == (True, None)

    def test_no_proc_modules(self):
        ok, reason = nc.kernel_modules_status(False, False, False, "6.18.44")
        assert not ok and "/proc/modules" in reason

    def test_no_lib_modules(self):
        ok, reason = nc.kernel_modules_status(True, False, False, "6.18.44")
        assert not ok and "/lib/modules/6.18.44" in reason

    def test_modules_disabled(self):
        ok, reason = nc.kernel_modules_status(True, True, True, "6.1.0")
        assert not ok and "modules_disabled" in reason


class TestCgroups:
    def test_hybrid(self):
        assert nc.cgroup_mode(nc.parse_mountinfo(MOUNTINFO_HYBRID)) == (1, "hybrid")

    def test_legacy_inside_container(self):
        assert nc.cgroup_mode(nc.parse_mountinfo(MOUNTINFO_LEGACY)) == (1, "legacy")

    def test_unified(self):
        assert nc.cgroup_mode(nc.parse_mountinfo(MOUNTINFO_UNIFIED)) == (2, "unified")

    def test_unknown(self):
        assert nc.cgroup_mode(nc.parse_mountinfo(MOUNTINFO_NONE)) == (None, None)
        assert nc.cgroup_mode(nc.parse_mountinfo(None)) == (None, None)

    def test_mountinfo_fields_and_escapes(self):
        mounts = nc.parse_mountinfo(
            "26 22 0:24 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
            "50 27 0:40 / /mnt/my\\040disk rw,relatime - ext4 /dev/sdb1 rw\n"
            "garbage line without separator\n"
        )
        assert mounts[0]["mount_point"] == "/sys/fs/cgroup"
        assert mounts[0]["fstype"] == "cgroup2"
        assert mounts[0]["super_options"] == "rw,nsdelegate"
        assert mounts[1]["mount_point"] == "/mnt/my disk"
        assert len(mounts) == 2


class TestContainer:
    @pytest.mark.parametrize("stdout,rc,expected", [
        ("podman\n", 0, "podman"),
        ("docker\n", 0, "docker"),
        ("lxc\n", 0, "lxc"),
        ("systemd-nspawn\n", 0, "systemd-nspawn"),
        ("none\n", 1, None),
        ("", 1, None),
    ])
    def test_detect_virt(self, stdout, rc, expected):
        assert nc.parse_detect_virt(stdout, rc) == expected

    def test_detect_virt_wins(self):
        assert nc.detect_container(detect_virt="lxc", containerenv=CONTAINERENV) == (True, "lxc")

    def test_containerenv(self):
        assert nc.detect_container(containerenv=CONTAINERENV) == (True, "podman")
        assert nc.detect_container(containerenv="") == (True, "podman")

    def test_dockerenv(self):
        assert nc.detect_container(dockerenv=True) == (True, "docker")

    def test_pid1_environ(self):
        assert nc.detect_container(pid1_environ=nc.parse_environ(PID1_ENVIRON_PODMAN)) == (True, "podman")

    def test_bare_metal(self):
        assert nc.detect_container(pid1_environ=nc.parse_environ(PID1_ENVIRON_HOST)) == (False, None)
        assert nc.detect_container() == (False, None)

    def test_environ_parsing(self):
        env = nc.parse_environ(PID1_ENVIRON_HOST)
        assert env["init"] == "/sbin/init"
        assert env["NETWORK_SKIP_ENSLAVED"] == ""


class TestMisc:
    @pytest.mark.parametrize("stdout,rc,expected", [
        ("yes\n", 0, True),
        ("no\n", 0, False),
        ("", 1, None),
        ("weird\n", 0, None),
    ])
    def test_timedatectl(self, stdout, rc, expected):
        assert nc.parse_timedatectl(stdout, rc) is expected

    def test_systemd_pid1(self):
        assert nc.is_systemd_pid1("systemd\n", False)
        assert nc.is_systemd_pid1(None, True)
        assert not nc.is_systemd_pid1("bash\n", False)

    def test_sysctl_path(self):
        assert nc.sysctl_path("net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward"
        assert nc.sysctl_path("net/ipv4/conf/eth0.100/forwarding") == "/proc/sys/net/ipv4/conf/eth0.100/forwarding"

    @pytest.mark.parametrize("value,expected", [
        ("32768\t60999\n", "32768 60999"),
        (1, "1"),
        (True, "1"),
        ("1\n", "1"),
        (None, None),
    ])
    def test_normalize_sysctl(self, value, expected):
        assert nc.normalize_sysctl(value) == expected

    def test_sysctl_mismatches(self):
        actual = {"net.ipv4.ip_forward": "1", "fs.inotify.max_user_watches": "192536",
                  "net.ipv4.ip_local_port_range": "32768 60999", "net.bridge.bridge-nf-call-iptables": None}
        expected = {"net.ipv4.ip_forward": 1, "fs.inotify.max_user_watches": 524288,
                    "net.ipv4.ip_local_port_range": "32768\t60999", "net.bridge.bridge-nf-call-iptables": True}
        assert nc.sysctl_mismatches(expected, actual) == {
            "fs.inotify.max_user_watches": {"expected": "524288", "actual": "192536"},
            "net.bridge.bridge-nf-call-iptables": {"expected": "1", "actual": None},
        }
        assert nc.sysctl_mismatches({}, actual) == {}

    def test_capabilities(self):
        assert nc.has_capability(nc.parse_cap_bounding_set(STATUS_ALL_CAPS), nc.CAP_SYS_TIME) is True
        assert nc.has_capability(nc.parse_cap_bounding_set(STATUS_PODMAN), nc.CAP_SYS_TIME) is False
        assert nc.has_capability(nc.parse_cap_bounding_set("Name:\tx\n"), nc.CAP_SYS_TIME) is None
        assert nc.parse_cap_bounding_set("CapBnd:\tzz\n") is None

    def test_sysctl_writable(self):
        assert nc.sysctl_writable_status(False, True) == (True, None)
        assert nc.sysctl_writable_status(True, True)[0] is False
        assert "read-only" in nc.sysctl_writable_status(True, False)[1]
        assert nc.sysctl_writable_status(False, False)[0] is False


# --- the module, with run_command patched -----------------------------------------

def write(root, path, content):
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)


@pytest.fixture
def gpu_host(tmp_path):
    """A recorded bare-metal GPU host: cgroup v2, swap on, modules loaded, systemd."""
    release = os.uname().release
    write(tmp_path, "/proc/self/mountinfo", MOUNTINFO_UNIFIED)
    write(tmp_path, "/proc/modules", PROC_MODULES)
    write(tmp_path, "/proc/swaps", SWAPS_ACTIVE)
    write(tmp_path, "/proc/1/environ", PID1_ENVIRON_HOST)
    write(tmp_path, "/proc/1/comm", "systemd\n")
    write(tmp_path, "/proc/1/status", STATUS_ALL_CAPS)
    write(tmp_path, "/proc/sys/kernel/modules_disabled", "0\n")
    write(tmp_path, "/proc/sys/net/ipv4/ip_forward", "0\n")
    write(tmp_path, "/proc/sys/net/ipv4/ip_local_port_range", "32768\t60999\n")
    write(tmp_path, "/lib/modules/%s/modules.builtin" % release, MODULES_BUILTIN)
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def lab_container(tmp_path):
    """A recorded podman lab container: no modules, legacy cgroups, no swap."""
    write(tmp_path, "/proc/self/mountinfo", MOUNTINFO_LEGACY)
    write(tmp_path, "/proc/swaps", SWAPS_NONE)
    write(tmp_path, "/proc/1/environ", PID1_ENVIRON_PODMAN)
    write(tmp_path, "/proc/1/comm", "systemd\n")
    write(tmp_path, "/proc/1/status", STATUS_PODMAN)
    write(tmp_path, "/run/.containerenv", CONTAINERENV)
    write(tmp_path, "/proc/sys/net/ipv4/ip_forward", "1\n")
    return tmp_path


def run_module(root, commands, args=None):
    """Run main() against the tree at `root`; `commands` maps a tool to (rc, stdout).

    Returns (exit_json kwargs, list of run_command calls with their environment update).
    """
    calls = []

    def fake_run_command(self, args, **kwargs):
        calls.append((list(args), dict(self.run_command_environ_update)))
        rc, out = commands[os.path.basename(args[0])]
        return rc, out, ""

    def fake_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/%s" % name if name in commands else None

    class Exit(Exception):
        pass

    def fake_exit(self, **kwargs):
        raise Exit(kwargs)

    with patch_module_args(args or {}), \
            mock.patch.object(basic.AnsibleModule, "run_command", fake_run_command), \
            mock.patch.object(basic.AnsibleModule, "get_bin_path", fake_bin_path), \
            mock.patch.object(basic.AnsibleModule, "exit_json", fake_exit), \
            mock.patch.object(module, "HOST_ROOT", str(root)):
        with pytest.raises(Exit) as exc:
            module.main()
    return exc.value.args[0], calls


def test_module_on_gpu_host(gpu_host):
    result, calls = run_module(
        gpu_host,
        {"systemd-detect-virt": (1, "none\n"), "timedatectl": (0, "yes\n")},
        {
            "sysctl_keys": ["net.ipv4.ip_forward", "net.ipv4.ip_local_port_range"],
            "sysctl_expected": {"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1},
        },
    )
    assert result["changed"] is False
    node = result["ansible_facts"]["gpuforge_node"]
    assert node["container"] is False and node["container_type"] is None
    assert (node["cgroup_version"], node["cgroup_mode"]) == (2, "unified")
    assert node["kernel_modules_loadable"] is True
    assert {"nvidia", "br_netfilter", "overlay", "ext4"} <= set(node["loaded_modules"])
    assert node["loaded_modules"] == sorted(node["loaded_modules"])
    assert node["sysctl_writable"] is True  # the recorded tree is a writable tmp dir
    assert node["sysctl_values"] == {
        "net.ipv4.ip_forward": "0",
        "net.ipv4.ip_local_port_range": "32768 60999",
        "net.bridge.bridge-nf-call-iptables": None,
    }
    assert node["sysctl_not_in_force"] == {
        "net.ipv4.ip_forward": {"expected": "1", "actual": "0"},
        "net.bridge.bridge-nf-call-iptables": {"expected": "1", "actual": None},
    }
    assert node["swap_active"] is True and len(node["swap_devices"]) == 3
    assert node["systemd"] is True
    assert node["cap_sys_time"] is True
    assert node["time_sync"] is True
    assert node["reasons"] == {}
    # Every parsed command ran with LC_ALL=C, as an argument list (no shell).
    assert [c[0] for c in calls] == [
        ["/usr/bin/systemd-detect-virt", "--container"],
        ["/usr/bin/timedatectl", "show", "-p", "NTPSynchronized", "--value"],
    ]
    assert all(env == {"LC_ALL": "C"} for _, env in calls)
    json.dumps(result)  # the facts are plain JSON


def test_module_in_lab_container(lab_container):
    result, dummy = run_module(lab_container, {"systemd-detect-virt": (0, "podman\n"), "timedatectl": (0, "no\n")})
    node = result["ansible_facts"]["gpuforge_node"]
    assert (node["container"], node["container_type"]) == (True, "podman")
    assert (node["cgroup_version"], node["cgroup_mode"]) == (1, "legacy")
    assert node["kernel_modules_loadable"] is False
    assert node["loaded_modules"] == []
    assert "/proc/modules" in node["reasons"]["kernel_modules_loadable"]
    assert node["swap_active"] is False and node["swap_devices"] == []
    assert node["time_sync"] is False
    assert node["cap_sys_time"] is False
    assert "CAP_SYS_TIME" in node["reasons"]["cap_sys_time"]
    assert node["sysctl_values"] == {}
    assert node["sysctl_not_in_force"] == {}


def test_module_without_tools(lab_container):
    """No systemd-detect-virt, no timedatectl: container from the files, time_sync unknown."""
    (lab_container / "run/.containerenv").unlink()
    result, calls = run_module(lab_container, {})
    node = result["ansible_facts"]["gpuforge_node"]
    assert calls == []
    assert (node["container"], node["container_type"]) == (True, "podman")  # from PID 1's environment
    assert node["time_sync"] is None
    assert "timedatectl" in node["reasons"]["time_sync"]


def test_module_read_only_proc_sys(lab_container):
    """A read-only /proc/sys (statvfs ST_RDONLY) is reported without writing anything."""
    fake = mock.Mock(f_flag=os.ST_RDONLY)
    with mock.patch.object(module.os, "statvfs", return_value=fake):
        result, dummy = run_module(lab_container, {"systemd-detect-virt": (0, "podman\n"), "timedatectl": (0, "no\n")})
    node = result["ansible_facts"]["gpuforge_node"]
    assert node["sysctl_writable"] is False
    assert node["reasons"]["sysctl_writable"] == "/proc/sys is mounted read-only"
    assert (lab_container / "proc/sys/net/ipv4/ip_forward").read_text() == "1\n"


def test_module_rejects_unknown_option(lab_container):
    class Failed(Exception):
        pass

    def fake_fail(self, **kwargs):
        raise Failed(kwargs)

    with patch_module_args({"bogus": 1}), mock.patch.object(basic.AnsibleModule, "fail_json", fake_fail):
        with pytest.raises(Failed) as exc:
            module.main()
    assert "bogus" in exc.value.args[0]["msg"]
