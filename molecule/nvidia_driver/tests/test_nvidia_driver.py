"""Verifier of gpuforge.cluster.nvidia_driver on the two lab hosts of molecule/nvidia_driver.

Host 1 stands in for a GPU worker (a Tesla T4 capture, see prepare.yml): Debian 12's
driver is really installed from Debian's mirror, pinned and held, nouveau blacklisted,
nvidia-persistenced enabled. It is a podman container: no kernel headers for the
machine's kernel, no loadable modules, no initramfs, no reboot. The role's report
(/etc/ansible/facts.d/gpuforge_nvidia_driver.fact) must say exactly that, and nothing on
the host may contradict it. Host 2 has no NVIDIA device: it must be left untouched.
"""

import json

import pytest
import testinfra

GPU_HOST = "gf-mol-nvidia_driver-1"
PLAIN_HOST = "gf-mol-nvidia_driver-2"
# Debian 12, source distro, headless, proprietary modules, persistenced (the defaults).
DRIVER_PACKAGES = ["nvidia-kernel-dkms", "firmware-nvidia-gsp", "nvidia-smi", "libcuda1", "libnvidia-ml1"]
PACKAGES = DRIVER_PACKAGES + ["nvidia-persistenced"]
BRANCH = "535"
# What headless must keep out: the X.org driver and what pulls it.
NOT_HEADLESS = ["nvidia-driver", "xserver-xorg-video-nvidia", "xserver-xorg-core", "nvidia-settings", "nvidia-vdpau-driver"]
BLACKLIST = "/etc/modprobe.d/gpuforge-blacklist-nouveau.conf"
PIN = "/etc/apt/preferences.d/gpuforge-nvidia-driver.pref"
REPORT = "/etc/ansible/facts.d/gpuforge_nvidia_driver.fact"
MARKER_DIR = "/var/lib/gpuforge/molecule"
CONTAINER_REASON = "/proc/modules is absent"


def lines(host, path):
    """Non-comment, non-empty lines of a file."""
    content = host.file(path).content_string
    return [line.strip() for line in content.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def dpkg_status(host, packages):
    """{package: (version, status abbrev)} of the packages dpkg knows."""
    out = host.run("dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' " + " ".join(packages))
    found = {}
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3:
            found[fields[0]] = (fields[1], fields[2])
    return found


def installed(host, packages):
    """{package: version} of the installed ones (status ii, or hi when held)."""
    return {p: v for p, (v, s) in dpkg_status(host, packages).items() if s[1:2] == "i"}


def upstream(version):
    return version.split(":")[-1].split("-")[0]


@pytest.fixture(scope="module")
def gpu():
    return testinfra.get_host("podman://" + GPU_HOST)


@pytest.fixture(scope="module")
def plain():
    return testinfra.get_host("podman://" + PLAIN_HOST)


@pytest.fixture
def report(gpu):
    f = gpu.file(REPORT)
    assert f.is_file
    assert f.user == "root" and f.mode == 0o644
    return json.loads(f.content_string)


# --- packages ---------------------------------------------------------------------

def test_driver_packages_installed(gpu):
    found = installed(gpu, PACKAGES)
    assert sorted(found) == sorted(PACKAGES)
    # One driver: every package of the driver has the same upstream version, of the branch.
    versions = {upstream(found[p]) for p in DRIVER_PACKAGES}
    assert len(versions) == 1, versions
    assert versions.pop().startswith(BRANCH + ".")
    assert upstream(found["nvidia-persistenced"]).startswith(BRANCH + ".")


def test_headless_has_no_xorg(gpu):
    assert installed(gpu, NOT_HEADLESS) == {}
    assert installed(gpu, ["nvidia-open-kernel-dkms", "nvidia-tesla-535-kernel-dkms"]) == {}


@pytest.mark.parametrize("hostname", [GPU_HOST, PLAIN_HOST])
def test_driver_packages_held(hostname):
    host = testinfra.get_host("podman://" + hostname)
    selections = dict(line.split() for line in host.check_output("dpkg --get-selections").splitlines())
    held = sorted(p.split(":")[0] for p, s in selections.items() if s == "hold")
    assert held == (sorted(PACKAGES) if hostname == GPU_HOST else [])


def test_apt_pin(gpu):
    f = gpu.file(PIN)
    assert f.user == "root" and f.mode == 0o644
    assert "Ansible managed" in f.content_string
    assert lines(gpu, PIN) == ["Package: src:nvidia-graphics-drivers", "Pin: version 535.*", "Pin-Priority: 1001"]
    # apt reads it: the installed driver version has priority 1001.
    policy = gpu.check_output("LC_ALL=C apt-cache policy nvidia-smi")
    version = installed(gpu, ["nvidia-smi"])["nvidia-smi"]
    assert "*** %s 1001" % version in policy


# --- kernel headers and DKMS --------------------------------------------------------

def test_headers_missing_for_the_machine_kernel(gpu, report):
    kernel = gpu.check_output("uname -r")
    headers = "linux-headers-" + kernel
    candidate = [line.split()[1] for line in gpu.check_output("LC_ALL=C apt-cache policy %s", headers).splitlines()
                 if line.strip().startswith("Candidate:")]
    # The machine's kernel is not Debian's: no headers package; the role reports it and goes on.
    assert candidate in ([], ["(none)"])
    assert installed(gpu, [headers]) == {}
    assert report["kernel"] == {
        "running": kernel, "newest_installed": None, "headers_package": headers, "headers_installed": False,
    }
    assert any(item.startswith("kernel headers not installed: no " + headers) for item in report["not_applied"])


def test_dkms_knows_the_module(gpu, report):
    status = [line for line in gpu.check_output("dkms status").splitlines() if "nvidia" in line]
    version = upstream(installed(gpu, ["nvidia-kernel-dkms"])["nvidia-kernel-dkms"])
    # Added, not built: no headers for the running kernel.
    assert status == ["nvidia-current/%s: added" % version]
    assert report["module"]["dkms_status"] == status


# --- nouveau --------------------------------------------------------------------------

def test_nouveau_blacklisted(gpu):
    f = gpu.file(BLACKLIST)
    assert f.user == "root" and f.group == "root" and f.mode == 0o644
    assert "Ansible managed" in f.content_string
    assert lines(gpu, BLACKLIST) == ["blacklist nouveau", "options nouveau modeset=0"]
    # kmod reads it.
    config = gpu.check_output("modprobe -c").splitlines()
    assert "blacklist nouveau" in config
    assert "options nouveau modeset=0" in config


def test_initramfs_takes_the_blacklist(gpu, report):
    """initramfs-tools copies /etc/modprobe.d/*.conf into every image; the container has none to regenerate."""
    assert installed(gpu, ["initramfs-tools"])
    assert BLACKLIST.endswith(".conf")
    mkinitramfs = gpu.file("/usr/sbin/mkinitramfs").content_string
    assert "for file in /etc/modprobe.d/*.conf" in mkinitramfs
    assert not gpu.file("/etc/dracut.conf.d/gpuforge-omit-nouveau.conf").exists
    assert gpu.check_output("find /boot -maxdepth 1 -name 'initrd.img-*'") == ""
    assert report["nouveau"] == {
        "blacklist_file": BLACKLIST,
        "initramfs_tool": "initramfs-tools",
        "initramfs_config": "mkinitramfs copies /etc/modprobe.d/*.conf into the image",
        "initramfs_images": [],
        "initramfs_regenerated_on_change": False,
        "loaded": False,
    }
    assert "initramfs not regenerated: no initramfs image in /boot" in report["not_applied"]


# --- the module, nvidia-smi, nvidia-persistenced ------------------------------------------

def test_module_not_loaded_and_reported(gpu, report):
    modules = gpu.file("/proc/modules")
    if modules.exists:
        assert "nvidia" not in [line.split()[0] for line in modules.content_string.splitlines()]
        assert report["module"]["reason"].startswith("modprobe nvidia failed")
    else:
        assert report["module"]["reason"].startswith(CONTAINER_REASON)
    assert report["module"]["loaded"] is False
    assert report["module"]["reason"].endswith("(this is a podman container)")


def test_nvidia_smi_fails_as_reported(gpu, report):
    smi = gpu.run("nvidia-smi -L")
    assert smi.rc != 0
    assert report["nvidia_smi"]["works"] is False
    assert report["nvidia_smi"]["output"] == (smi.stdout + " " + smi.stderr).strip().splitlines()[0]
    assert "couldn't communicate with the NVIDIA driver" in report["nvidia_smi"]["output"]


def test_persistenced_enabled_not_running(gpu, report):
    service = gpu.service("nvidia-persistenced")
    assert service.is_enabled
    # No /dev/nvidiactl in a container: it cannot run, and the report says so.
    assert not service.is_running
    assert report["persistenced"] == {"managed": True, "service": "nvidia-persistenced", "enabled": True, "running": False}
    assert "nvidia-persistenced enabled, not running: the nvidia module is not loaded" in report["not_applied"]


# --- reboot -----------------------------------------------------------------------------

@pytest.mark.parametrize("hostname", [GPU_HOST, PLAIN_HOST])
def test_not_rebooted(hostname):
    """Same boot and same PID 1 as before converge: nothing rebooted the host or restarted the container."""
    host = testinfra.get_host("podman://" + hostname)
    before = json.loads(host.file(MARKER_DIR + "/before-converge.json").content_string)
    assert host.file("/proc/sys/kernel/random/boot_id").content_string.strip() == before["boot_id"]
    assert host.check_output("cut -d' ' -f22 /proc/1/stat") == before["pid1_start"]


def test_reboot_pending_reported(report):
    reboot = report["reboot"]
    assert reboot["pending"] is True
    assert reboot["allowed"] is False
    assert len(reboot["reasons"]) == 1
    assert reboot["reasons"][0].startswith("the nvidia kernel module is not loaded: ")
    assert reboot["reasons"][0].endswith("(this is a podman container)")
    assert reboot["not_rebooted_reason"].startswith("this is a podman container: containers are never rebooted")
    assert "reboot pending: " + reboot["reasons"][0] in report["not_applied"]


# --- the report -------------------------------------------------------------------------

def test_report(gpu, report):
    assert report["role"] == "gpuforge.cluster.nvidia_driver"
    assert report["container"] is True and report["container_type"] == "podman"
    assert report["gpus"] == ["Tesla T4"] and report["gpus_simulated"] is True
    version = upstream(installed(gpu, ["nvidia-smi"])["nvidia-smi"])
    assert report["driver"] == {
        "source": "distro",
        "branch": BRANCH,
        "version_wanted": None,
        "kernel_modules": "proprietary",
        "flavor": "headless",
        "packages": PACKAGES,
        "installed_versions": [version],
        "held": PACKAGES,
        "hold": "dpkg selections (hold) and apt pin " + PIN,
        "repository": "distribution",
    }
    assert report["secure_boot"] == {
        "state": "unknown",
        "source": "this is a podman container: the firmware and its Secure Boot state are the machine's",
        "signing": None,
    }
    assert not gpu.file("/etc/dkms/framework.conf.d/gpuforge-mok.conf").exists
    assert len(report["not_applied"]) == 5


# --- host 2 is untouched ----------------------------------------------------------------

def test_plain_host_has_no_nvidia_package(plain):
    """Its package list is the one prepare recorded: nothing installed, removed or held."""
    before = plain.file(MARKER_DIR + "/packages-before.txt").content_string
    now = plain.check_output("dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' | sort")
    assert now.strip() == before.strip()
    assert installed(plain, PACKAGES + ["initramfs-tools"]) == {}
    assert plain.run("nvidia-smi -L").rc == 127


def test_plain_host_has_no_new_file(plain):
    """No file under /etc changed since prepare: no blacklist, pin, DKMS key, report."""
    assert plain.check_output("find /etc -newer %s/packages-before.txt -print", MARKER_DIR) == ""
    for path in (BLACKLIST, PIN, REPORT, "/etc/ansible/facts.d", "/etc/dkms/framework.conf.d/gpuforge-mok.conf"):
        assert not plain.file(path).exists, path
