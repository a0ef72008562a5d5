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
import json
import os
import re
import subprocess
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


def test_oom_score_adj_restricted_where_set(host):
    """containerd_restrict_oom_score_adj (hosts 1 and 3) in the configuration containerd runs with, in the CRI
    section of schema 2 (on host 1 through the toolkit's drop-in, which replaces that section) and in the
    runtime plugin of schema 3; containerd's default elsewhere."""
    runtime, _, _ = cri(host)
    assert runtime.get("restrict_oom_score_adj", False) is (name(host) in (HOST1, HOST3))


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
    assert section["restrict_oom_score_adj"] is True
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


# --- air-gapped images (containerd_image_archives_dir: build_image_archives.sh's folder) ---------------

IMAGES_DIR = ARCHIVE.parents[1] / "images"
IMAGE_CACHE = "/var/cache/gpuforge/images"
ARCHIVE_IMAGES = {"two.tar": ["localhost/gpuforge-test/alpha:1", "localhost/gpuforge-test/beta:1"],
                  "one.tar": ["localhost/gpuforge-test/gamma:1"]}
IMPORTS = {HOST1: {"one.tar", "two.tar"}, HOST2: {"one.tar"}, HOST3: {"one.tar", "two.tar"}}
PINNED = "io.cri-containerd.pinned"


def k8s_images(host):
    """{ref: {label: value}} of the kubelet's namespace, from `ctr images ls` (LABELS is the last column)."""
    out = host.check_output("LC_ALL=C ctr -n k8s.io images ls")
    images = {}
    for line in out.splitlines()[1:]:
        fields = line.split()
        labels = dict(p.split("=", 1) for p in fields[-1].split(",")) if fields[-1] != "-" else {}
        images[fields[0]] = labels
    return images


def sums():
    return {path: digest for digest, path in (line.split() for line in (IMAGES_DIR / "SHA256SUMS").read_text().splitlines())}


def test_image_archives_imported_and_pinned_where_listed(host):
    present = k8s_images(host)
    for archive, refs in ARCHIVE_IMAGES.items():
        copy = host.file(f"{IMAGE_CACHE}/{archive}")
        if archive in IMPORTS[name(host)]:
            for ref in refs:
                assert present.get(ref, {}).get(PINNED) == "pinned", (ref, present.get(ref))
            # the host's copy is the archive the controller's SHA256SUMS lists
            assert copy.is_file and copy.mode == 0o644
            assert host.check_output(f"sha256sum {IMAGE_CACHE}/{archive}").split()[0] == sums()[archive]
        else:
            assert not any(ref in present for ref in refs), present
            assert not copy.exists


def test_imported_images_are_complete_and_left_packed(host):
    """Every blob of an imported image is in containerd's content store (`ctr images check`: complete), and,
    with containerd_image_archives_unpack false (molecule.yml: no mounts here), nothing was unpacked."""
    out = host.check_output("LC_ALL=C ctr -n k8s.io images check")
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    wanted = [ref for archive in sorted(IMPORTS[name(host)]) for ref in ARCHIVE_IMAGES[archive]]
    for ref in wanted:
        assert ref in rows, out
        assert re.search(r"\scomplete \((\d+)/\1\)\s", rows[ref]), rows[ref]
        assert rows[ref].split()[-1] == "false", rows[ref]  # the UNPACKED column


def test_an_archive_that_is_not_the_checked_one_is_refused(host1):
    """An image is missing, and the archive that should bring it back is not the one SHA256SUMS lists: the
    module imports nothing; the right archive brings the image back, pinned (packed: no mounts here)."""
    gamma = ARCHIVE_IMAGES["one.tar"][0]
    host1.check_output(f"ctr -n k8s.io images rm {gamma}")
    try:
        host1.check_output(f"cp {IMAGE_CACHE}/one.tar /tmp/one.tar && head -c 10240 /dev/zero >> /tmp/one.tar")
        rc, out = ansible_module(HOST1, {"archives": {"/tmp/one.tar": sums()["one.tar"]}, "unpack": False})
        assert rc != 0
        assert "/tmp/one.tar has SHA-256 " in out and f"not the expected {sums()['one.tar']}" in out, out[-3000:]
        assert "nothing was imported" in out
        assert gamma not in k8s_images(host1)
    finally:
        rc, out = ansible_module(HOST1, {"archives": {f"{IMAGE_CACHE}/one.tar": sums()["one.tar"]}, "unpack": False})
        host1.run("rm -f /tmp/one.tar")
    assert rc == 0, out[-3000:]
    assert k8s_images(host1)[gamma].get(PINNED) == "pinned"
    # and again: nothing to do
    rc, out = ansible_module(HOST1, {"archives": {f"{IMAGE_CACHE}/one.tar": sums()["one.tar"]}, "unpack": False})
    assert rc == 0 and '"changed": false' in out, out[-3000:]


def ansible_module(limit, args):
    """gpuforge.cluster.containerd_images on one host of the scenario's inventory: (rc, output)."""
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1")
    inventory = env.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "MOLECULE_INVENTORY_FILE is not set: run this verifier through `molecule verify`"
    proc = subprocess.run(["ansible", "-i", inventory, limit, "-b", "-m", "gpuforge.cluster.containerd_images",
                           "-a", json.dumps(args)], env=env, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr
