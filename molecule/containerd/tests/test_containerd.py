"""Verifier of gpuforge.cluster.containerd on the three lab hosts of molecule/containerd (molecule.yml):

Host 1: Debian 12, containerd 1.6 from Debian, a simulated GPU host whose NVIDIA toolkit drop-in
        (applied in prepare.yml, after the role ran with an older sandbox image and a mirror converge
        no longer lists) copies the CRI plugin section.
Host 2: Debian 13, containerd 1.7 from Debian.
Host 3: Debian 12, containerd 2.2 from a release archive in an offline folder (SHA-256 checked).

What containerd reads is checked through containerd itself: `containerd config dump` parsed as TOML,
`ctr version` and `ctr plugins ls` of the running daemon.
"""

import hashlib
import os
import re
import tomllib
from pathlib import Path

import pytest
import testinfra

HOST1, HOST2, HOST3 = "gf-mol-containerd-1", "gf-mol-containerd-2", "gf-mol-containerd-3"
MAIN = "/etc/containerd/config.toml"
DROPIN_GLOB = "/etc/containerd/conf.d/*.toml"
NVIDIA_DROPIN = "/etc/containerd/conf.d/99-nvidia.toml"
CERTS = "/etc/containerd/certs.d"
SANDBOX = "mirror.site.internal:5000/k8s/pause:3.10.2"  # molecule.yml; prepare.yml had pause:3.9
V1_CRI = "io.containerd.grpc.v1.cri"
V2_RUNTIME = "io.containerd.cri.v1.runtime"
V2_IMAGES = "io.containerd.cri.v1.images"
ARCHIVE = Path(os.environ.get("GPUFORGE_CACHE") or Path.home() / ".cache" / "gpuforge") / \
    "molecule-containerd" / "dist" / "containerd-2.2.9-linux-amd64.tar.gz"
EXPECT = {
    HOST1: {"version": "1.6.", "schema": 2, "source": "debian"},
    HOST2: {"version": "1.7.", "schema": 2, "source": "debian"},
    HOST3: {"version": "2.2.9", "schema": 3, "source": "archive"},
}


def name(host):
    return host.backend.get_hostname()


def lab_host(hostname):
    return testinfra.get_host("podman://" + hostname)


@pytest.fixture
def host1():
    return lab_host(HOST1)


@pytest.fixture
def host3():
    return lab_host(HOST3)


@pytest.fixture(params=[HOST1, HOST2])
def debian_host(request):
    return lab_host(request.param)


def dump(host):
    out = host.run("LC_ALL=C containerd config dump")
    assert out.rc == 0, out.stderr
    return tomllib.loads(out.stdout)


def cri(host):
    """(runtime table, images table) of the CRI plugin as containerd reads it."""
    config = dump(host)
    if config["version"] >= 3:
        return config["plugins"][V2_RUNTIME], config["plugins"][V2_IMAGES], config
    section = config["plugins"][V1_CRI]
    return section, section, config


def test_running_with_the_cri_plugin(host):
    assert host.service("containerd").is_running
    assert host.service("containerd").is_enabled
    plugins = host.check_output("ctr plugins ls")
    wanted = r"^io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok\s*$" if EXPECT[name(host)]["schema"] == 2 else \
        r"^io\.containerd\.cri\.v1\s+runtime\s+\S+\s+ok\s*$"
    assert re.search(wanted, plugins, re.MULTILINE), plugins


def test_server_version(host):
    out = host.check_output("ctr version")
    server = out.split("Server:", 1)[1]
    assert re.search(r"Version:\s+v?" + re.escape(EXPECT[name(host)]["version"]), server), out


def test_main_configuration_matches_the_installed_major(host):
    text = host.file(MAIN).content_string
    config = tomllib.loads(text)
    assert config["version"] == EXPECT[name(host)]["schema"]
    assert config["imports"] == [DROPIN_GLOB]
    assert text.startswith("#")  # ansible_managed header
    assert host.file("/etc/containerd/conf.d").is_directory


def test_runc_uses_the_systemd_cgroup_driver(host):
    runtime, _, _ = cri(host)
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is True
    assert runtime["containerd"]["default_runtime_name"] == "runc"


def test_sandbox_image_and_cni_folders(host):
    runtime, images, config = cri(host)
    if config["version"] >= 3:
        assert images["pinned_images"]["sandbox"] == SANDBOX
        assert runtime["cni"]["bin_dirs"] == ["/opt/cni/bin"]
    else:
        assert images["sandbox_image"] == SANDBOX
        assert runtime["cni"]["bin_dir"] == "/opt/cni/bin"
    assert runtime["cni"]["conf_dir"] == "/etc/cni/net.d"


def test_registry_mirrors(host):
    _, images, _ = cri(host)
    assert images["registry"]["config_path"] == CERTS
    site = tomllib.loads(host.file(f"{CERTS}/registry.site.internal/hosts.toml").content_string)
    assert "server" not in site  # no fallback to the upstream registry: pulls stay on the site
    assert site["host"] == {
        "https://mirror.site.internal:5000": {"capabilities": ["pull", "resolve"],
                                              "ca": "/etc/ssl/certs/ca-certificates.crt"},
        "https://mirror2.site.internal": {"capabilities": ["pull", "resolve"],
                                          "ca": "/etc/ssl/certs/ca-certificates.crt"},
    }
    default = tomllib.loads(host.file(f"{CERTS}/_default/hosts.toml").content_string)
    assert default["host"] == {"http://mirror.site.internal:5001": {"capabilities": ["pull", "resolve"],
                                                                     "skip_verify": True}}
    assert sorted(host.file(CERTS).listdir()) == ["_default", "registry.site.internal"]


def test_distro_packages_are_held(debian_host):
    for package in ("containerd", "runc"):
        status = debian_host.check_output(f"dpkg-query -W -f='${{Status}}' {package}")
        assert status == "hold ok installed", package


def test_stale_mirror_removed(host1):
    # prepare.yml listed old.site.internal; converge no longer does
    assert not host1.file(f"{CERTS}/old.site.internal").exists


def test_nvidia_dropin_follows_the_new_configuration(host1):
    """containerd 1.6 takes the CRI section of the toolkit's drop-in: it must hold the new sandbox image."""
    runtime, images, config = cri(host1)
    assert NVIDIA_DROPIN in config["imports"]
    assert runtime["containerd"]["runtimes"]["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert images["sandbox_image"] == SANDBOX
    dropin = host1.file(NVIDIA_DROPIN).content_string
    assert SANDBOX in dropin and "pause:3.9" not in dropin


def started_at(host):
    """When the running containerd daemon started, in seconds since the epoch."""
    return int(host.check_output("date -d \"$(systemctl show -p ActiveEnterTimestamp --value containerd)\" +%s"))


def test_running_daemon_loaded_the_files_it_dumps(host):
    """`containerd config dump` reads the files: the running daemon started after the last write of each."""
    files = [MAIN] + ([NVIDIA_DROPIN] if host.file(NVIDIA_DROPIN).exists else [])
    for path in files:
        assert started_at(host) >= int(host.check_output(f"stat -c %Y {path}")), path


def test_nvidia_dropin_only_on_the_gpu_host(host):
    """The toolkit's containerd entry point ran only where its drop-in was (host 1): no drop-in elsewhere."""
    assert host.file(NVIDIA_DROPIN).exists == (name(host) == HOST1)
    if name(host) != HOST1:
        assert sorted(cri(host)[0]["containerd"]["runtimes"]) == ["runc"]


def test_nvidia_dropin_renders_the_containerd_1_6_cri_section(host1):
    """The refreshed copy is the whole CRI section of the new config.toml, plus the nvidia runtime."""
    dropin = tomllib.loads(host1.file(NVIDIA_DROPIN).content_string)
    section = dropin["plugins"][V1_CRI]
    assert section["sandbox_image"] == SANDBOX
    assert section["registry"]["config_path"] == CERTS
    assert section["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert section["containerd"]["runtimes"]["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    # config.toml is the containerd role's own rendering: nothing else wrote it
    assert host1.file(MAIN).content_string.startswith("#")
    assert "runtimes.nvidia" not in host1.file(MAIN).content_string


def test_release_archive_install(host3):
    for binary in ("containerd", "containerd-shim-runc-v2", "ctr"):
        link = host3.file(f"/usr/local/bin/{binary}")
        assert link.is_symlink and link.linked_to == f"/opt/containerd/2.2.9/bin/{binary}"
    unit = host3.file("/etc/systemd/system/containerd.service").content_string
    assert "ExecStart=/usr/local/bin/containerd --config /etc/containerd/config.toml" in unit
    assert "Delegate=yes" in unit and "KillMode=process" in unit
    assert host3.package("runc").is_installed
    assert not host3.package("containerd").is_installed  # nothing from the distribution
    # the archive on the host is the one of the controller's offline folder
    on_host = host3.check_output("sha256sum /var/cache/gpuforge/containerd/containerd-2.2.9-linux-amd64.tar.gz").split()[0]
    assert on_host == hashlib.sha256(ARCHIVE.read_bytes()).hexdigest()
