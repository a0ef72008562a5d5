"""Verifier of gpuforge.cluster.nvidia_container_toolkit on the four lab hosts of
molecule/nvidia_container_toolkit (see molecule.yml):

Host 1: simulated GPU host, Debian 12's containerd 1.6, install_mode configure_only.
Host 2: no NVIDIA device, containerd 1.6: must be untouched.
Host 3: simulated GPU host, containerd 2.2 (built from its Go module by prepare.yml) with a
        version 3 main configuration, install_mode package_dir (toolkit .debs built from
        its Go module), nvidia as default runtime, nvidia-cdi and nvidia-legacy.
Host 4: simulated GPU host, Debian 13's containerd 1.7, install_mode repo from a signed
        mirror (file:// URLs), nvidia as default runtime, nvidia-cdi.

What containerd reads is checked through containerd itself (`containerd config dump` parsed
as TOML, `ctr plugins ls` for the CRI plugin of the running daemon), not only by reading the
files the role wrote.

The last tests change hosts 1, 3 and 4 on purpose and run in file order: the main
configuration is rendered again as the containerd role renders it (the runtime must
survive); on host 3 it is replaced by containerd 2.2's own default configuration (which
imports conf.d: the runtime survives); on host 1 by `containerd config default` of
containerd 1.6 as Kubespray-style tools do (`imports = []`: the runtime is gone); then the
role runs again on host 1 (ansible-playbook converge.yml): it never writes config.toml, so it
stops before changing anything, naming the host, nvidia_container_toolkit_containerd_config and
the remedy (also when there is no config.toml at all); with the imports line added by hand, as
the message says, the next run brings the runtime back. Host 1 is left in that restored state.
"""

import base64
import json
import os
import re
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import testinfra

HOST1 = "gf-mol-nvidia_container_toolkit-1"
HOST2 = "gf-mol-nvidia_container_toolkit-2"
HOST3 = "gf-mol-nvidia_container_toolkit-3"
HOST4 = "gf-mol-nvidia_container_toolkit-4"
GPU_HOSTS = [HOST1, HOST3, HOST4]
SCENARIO = Path(__file__).resolve().parents[1]
MAIN_CONFIG = "/etc/containerd/config.toml"
DROPIN = "/etc/containerd/conf.d/99-nvidia.toml"
DROPIN_GLOB = "/etc/containerd/conf.d/*.toml"
REPORT = "/etc/ansible/facts.d/gpuforge_nvidia_container_toolkit.fact"
RUNTIME = "/usr/bin/nvidia-container-runtime"
TOOLKIT_PACKAGES = ["nvidia-container-toolkit", "nvidia-container-toolkit-base"]  # hosts 3 and 4
ALL_PACKAGES = TOOLKIT_PACKAGES + ["libnvidia-container-tools", "libnvidia-container1"]
SANDBOX = "mirror.example.internal:5000/pause:3.10"  # files/containerd-config-v*.toml
V1_CRI = "io.containerd.grpc.v1.cri"
V2_CRI = "io.containerd.cri.v1.runtime"

# What each host must end up with (molecule.yml host_vars).
EXPECT = {
    HOST1: {
        "containerd": "1.6.", "main": "containerd-config-v2.toml", "schema": 2, "plugin": V1_CRI,
        "default": "runc", "runtimes": {"nvidia": RUNTIME}, "mode": "configure_only", "packages": {},
    },
    HOST2: {"containerd": "1.6.", "main": "containerd-config-v2.toml"},
    HOST3: {
        "containerd": "2.2.", "main": "containerd-config-v3.toml", "schema": 3, "plugin": V2_CRI,
        "default": "nvidia",
        "runtimes": {"nvidia": RUNTIME, "nvidia-cdi": RUNTIME + ".cdi", "nvidia-legacy": RUNTIME + ".legacy"},
        "mode": "package_dir", "packages": {p: "1.20.2-1" for p in TOOLKIT_PACKAGES},
    },
    HOST4: {
        "containerd": "1.7.", "main": "containerd-config-v2.toml", "schema": 2, "plugin": V1_CRI,
        "default": "nvidia", "runtimes": {"nvidia": RUNTIME, "nvidia-cdi": RUNTIME + ".cdi"},
        "mode": "repo", "packages": {p: "1.20.2-1" for p in TOOLKIT_PACKAGES},
    },
}


def name(host):
    return host.backend.get_hostname()


def lab_host(hostname):
    return testinfra.get_host("podman://" + hostname)


# Tests taking `host` run on the four hosts (verifier options in molecule.yml); the others
# name their hosts: `gpu_host` (1, 3 and 4), `containerd1_gpu_host` (1 and 4), `host1`...
@pytest.fixture(params=GPU_HOSTS)
def gpu_host(request):
    return lab_host(request.param)


@pytest.fixture(params=[HOST1, HOST4])
def containerd1_gpu_host(request):
    return lab_host(request.param)


@pytest.fixture
def host1():
    return lab_host(HOST1)


@pytest.fixture
def host2():
    return lab_host(HOST2)


@pytest.fixture
def host3():
    return lab_host(HOST3)


@pytest.fixture
def report(gpu_host):
    f = gpu_host.file(REPORT)
    assert f.is_file
    return json.loads(f.content_string)


def dump(host):
    """The configuration containerd reads (main configuration and its imports), as TOML."""
    out = host.run("LC_ALL=C containerd config dump")
    assert out.rc == 0, out.stderr
    return tomllib.loads(out.stdout)


def cri_containerd(config):
    """The `containerd` table of the CRI runtime plugin of a dumped configuration."""
    if config["version"] >= 3:
        return config["plugins"][V2_CRI]["containerd"]
    return config["plugins"][V1_CRI]["containerd"]


def version(host):
    out = host.check_output("LC_ALL=C containerd --version")
    return re.match(r"containerd\s+\S+\s+v?(\S+)", out).group(1)


def cri_plugin_ok(host):
    """Whether the running daemon loaded the CRI runtime plugin (`ctr plugins ls`)."""
    out = host.check_output("ctr plugins ls")
    if version(host).startswith("1."):
        wanted = r"^io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok\s*$"
    else:
        wanted = r"^io\.containerd\.cri\.v1\s+runtime\s+\S+\s+ok\s*$"
    return re.search(wanted, out, re.MULTILINE) is not None


def restart_containerd(host):
    host.run("systemctl restart containerd")
    for _ in range(30):
        if host.run("systemctl is-active containerd").stdout.strip() == "active":
            break
        time.sleep(1)
    assert host.run("systemctl is-active containerd").stdout.strip() == "active"


def write_file(host, path, content):
    encoded = base64.b64encode(content.encode()).decode()
    host.check_output(f"echo {encoded} | base64 -d > {path}")


# --- containerd ---------------------------------------------------------------------

def test_containerd_runs_with_its_cri_plugin(host):
    assert host.run("systemctl is-active containerd").stdout.strip() == "active"
    assert cri_plugin_ok(host)


def test_containerd_version(host):
    assert version(host).startswith(EXPECT[name(host)]["containerd"])


def test_main_config_is_the_one_prepare_wrote(host):
    """The main configuration imports conf.d already: the role leaves it as it is."""
    assert host.file(MAIN_CONFIG).content_string == (SCENARIO / "files" / EXPECT[name(host)]["main"]).read_text()


# --- the drop-in --------------------------------------------------------------------

def test_dropin_file(gpu_host):
    f = gpu_host.file(DROPIN)
    assert f.is_file and f.user == "root" and f.mode == 0o644
    assert "Ansible managed" in f.content_string
    assert tomllib.loads(f.content_string)["version"] == EXPECT[name(gpu_host)]["schema"]


def test_dropin_containerd1_repeats_the_cri_section(containerd1_gpu_host):
    """containerd 1.x replaces imported plugin sections: the drop-in carries runc too."""
    host = containerd1_gpu_host
    want = EXPECT[name(host)]
    cri = tomllib.loads(host.file(DROPIN).content_string)["plugins"][V1_CRI]
    assert cri["sandbox_image"] == SANDBOX  # from the main configuration
    rts = cri["containerd"]["runtimes"]
    assert sorted(rts) == sorted(["runc", *want["runtimes"]])
    assert rts["runc"]["options"] == {"SystemdCgroup": True}
    for runtime, binary in want["runtimes"].items():
        assert rts[runtime]["runtime_type"] == "io.containerd.runc.v2"
        assert rts[runtime]["options"] == {"BinaryName": binary, "SystemdCgroup": True}
    assert cri["containerd"]["default_runtime_name"] == want["default"]


def test_dropin_containerd2_holds_the_runtimes_only(host3):
    """containerd 2.x merges key by key; the drop-in has the main configuration's version."""
    dropin = tomllib.loads(host3.file(DROPIN).content_string)
    assert list(dropin["plugins"]) == [V2_CRI]
    cd = dropin["plugins"][V2_CRI]["containerd"]
    assert cd["default_runtime_name"] == "nvidia"
    assert {k: v["options"] for k, v in cd["runtimes"].items()} == {
        k: {"BinaryName": v, "SystemdCgroup": True} for k, v in EXPECT[HOST3]["runtimes"].items()}


# --- what containerd reads ----------------------------------------------------------

def test_dump_shows_the_nvidia_runtimes_next_to_runc(gpu_host):
    want = EXPECT[name(gpu_host)]
    config = dump(gpu_host)
    cd = cri_containerd(config)
    for runtime, binary in want["runtimes"].items():
        assert cd["runtimes"][runtime]["runtime_type"] == "io.containerd.runc.v2"
        assert cd["runtimes"][runtime]["options"]["BinaryName"] == binary
        assert cd["runtimes"][runtime]["options"]["SystemdCgroup"] is True
    assert sorted(cd["runtimes"]) == sorted(["runc", *want["runtimes"]])
    assert cd["default_runtime_name"] == want["default"]
    # The settings of the main configuration survive the import.
    assert cd["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    if want["schema"] == 3:
        assert config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == SANDBOX
    else:
        assert config["plugins"][V1_CRI]["sandbox_image"] == SANDBOX
        # containerd 1.x lists the files it loaded, in no fixed order (it walks a map)
        assert sorted(config["imports"]) == sorted([MAIN_CONFIG, DROPIN])


# --- packages -----------------------------------------------------------------------

def installed_packages(host):
    out = host.run("dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' " + " ".join(ALL_PACKAGES))
    return {line.split()[0]: line.split()[1] for line in out.stdout.splitlines() if re.match(r"\S+ \S+ .i", line)}


def test_packages(gpu_host):
    host = gpu_host
    want = EXPECT[name(host)]
    assert installed_packages(host) == want["packages"]
    if not want["packages"]:  # configure_only: nothing installed
        assert not host.file(RUNTIME).exists
        return
    held = host.check_output("dpkg --get-selections " + " ".join(TOOLKIT_PACKAGES)).split()
    assert held == ["nvidia-container-toolkit", "hold", "nvidia-container-toolkit-base", "hold"]
    assert "version 1.20.2" in host.check_output("nvidia-ctk --version")
    assert "version 1.20.2" in host.check_output(f"{RUNTIME} --version")
    for binary in (RUNTIME, RUNTIME + ".cdi", RUNTIME + ".legacy", "/usr/bin/nvidia-container-runtime-hook"):
        assert host.file(binary).is_file and host.file(binary).mode == 0o755


def test_packages_come_from_the_mirror(gpu_host):
    """install_mode repo: the signed mirror is configured with signed-by and apt uses it."""
    host = gpu_host
    if EXPECT[name(host)]["mode"] != "repo":
        assert not host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").exists
        return
    sources = host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").content_string
    fields = dict(line.split(": ", 1) for line in sources.splitlines() if line and not line.startswith("#"))
    assert fields == {
        "Types": "deb",
        "URIs": "file:///srv/mirror/nvidia-container-toolkit/stable/deb/$(ARCH)",
        "Suites": "/",
        "Signed-By": "/etc/apt/keyrings/nvidia-container-toolkit.asc",
    }
    key = host.file("/etc/apt/keyrings/nvidia-container-toolkit.asc")
    assert key.content_string == host.file("/srv/mirror/nvidia-container-toolkit/gpgkey").content_string
    policy = host.check_output("LC_ALL=C apt-cache policy nvidia-container-toolkit")
    assert "file:/srv/mirror/nvidia-container-toolkit/stable/deb/amd64" in policy
    assert "Installed: 1.20.2-1" in policy


# --- report -------------------------------------------------------------------------

def test_report(gpu_host, report):
    host = gpu_host
    want = EXPECT[name(host)]
    assert report["role"] == "gpuforge.cluster.nvidia_container_toolkit"
    assert report["install_mode"] == want["mode"]
    assert report["runtime_configured"] is True
    assert report["gpu"]["simulated"] is True and report["gpu"]["driver_loaded"] is True
    cd = report["containerd"]
    assert cd["installed"] is True and cd["version"] == version(host)
    assert cd["dropin"] == DROPIN and cd["imports_dropin"] is True and cd["imports"] == [DROPIN_GLOB]
    assert cd["config_version"] == want["schema"] and cd["dropin_version"] == want["schema"]
    assert cd["cri_plugin"] == want["plugin"]
    assert cd["runtimes"] == want["runtimes"]
    assert cd["default_runtime"] == ("nvidia" if want["default"] == "nvidia" else "unchanged")
    assert cd["reason"] is None
    if want["schema"] == 2:
        assert cd["merge"].startswith("containerd 1.x replaces imported plugin sections")
    else:
        assert cd["merge"].startswith("containerd 2.x merges imported plugin sections key by key")
    assert report["packages"]["installed"] == want["packages"]
    assert report["cdi"]["present"] is False
    if want["mode"] == "configure_only":
        assert report["packages"]["managed"] is False and report["packages"]["missing"] == ALL_PACKAGES
        assert cd["runtime_binaries_missing"] == [RUNTIME]
        assert report["cdi"]["reason"] == "nvidia-ctk is not installed (/usr/bin/nvidia-ctk)"
        assert [n.split(":")[0] for n in report["not_applied"]] == [
            "packages not installed (install_mode configure_only, nothing installs them here)",
            "runtime binaries missing (/usr/bin/nvidia-container-runtime)",
            "CDI specification not generated",
        ]
    else:
        assert report["packages"]["held"] is True and report["packages"]["missing"] == []
        assert report["packages"]["wanted_version"] == "1.20.2-1"
        assert cd["runtime_binaries_missing"] == []
        # nvidia-ctk is there, but the driver of a simulated host is not.
        assert report["cdi"]["reason"].startswith("simulated GPU host")
        assert len(report["not_applied"]) == 1 and report["not_applied"][0].startswith("CDI specification not generated")


# --- the host without NVIDIA device -------------------------------------------------

def test_host_without_gpu_untouched(host2):
    assert not host2.file(DROPIN).exists
    assert not host2.file(REPORT).exists
    assert not host2.file("/var/lib/gpuforge/nvidia_container_toolkit").exists
    assert sorted(cri_containerd(dump(host2))["runtimes"]) == ["runc"]


# --- re-applied containerd configuration (changes hosts 1, 3 and 4; keep these last) ---

def test_rerendered_main_config_keeps_the_runtime(gpu_host):
    """The containerd role renders config.toml again (same content) and restarts containerd."""
    host = gpu_host
    write_file(host, MAIN_CONFIG, (SCENARIO / "files" / EXPECT[name(host)]["main"]).read_text())
    restart_containerd(host)
    assert cri_plugin_ok(host)
    assert cri_containerd(dump(host))["runtimes"]["nvidia"]["options"]["BinaryName"] == RUNTIME


def test_containerd2_default_config_imports_conf_d(host3):
    """containerd 2.2's own default configuration imports conf.d: the runtime stays."""
    host3.check_output(f"containerd config default > {MAIN_CONFIG}")
    assert DROPIN_GLOB in tomllib.loads(host3.file(MAIN_CONFIG).content_string)["imports"]
    restart_containerd(host3)
    assert cri_plugin_ok(host3)
    assert cri_containerd(dump(host3))["runtimes"]["nvidia"]["options"]["BinaryName"] == RUNTIME


def test_kubespray_style_overwrite_loses_the_runtime(host1):
    """A tool that writes `containerd config default` (containerd 1.x: `imports = []`) drops it."""
    host1.check_output(f"containerd config default > {MAIN_CONFIG}")
    assert tomllib.loads(host1.file(MAIN_CONFIG).content_string)["imports"] == []
    restart_containerd(host1)
    config = dump(host1)
    assert config["imports"] == [MAIN_CONFIG]
    assert sorted(cri_containerd(config)["runtimes"]) == ["runc"]
    assert host1.file(DROPIN).is_file  # still there, just not imported


def ansible_playbook(limit, ok=True):
    """converge.yml on one host, the way `molecule converge` runs it; returns (changed, output).

    ok=False: the run must fail; returns (changed, output) of the failed run."""
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1")
    inventory = env.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "MOLECULE_INVENTORY_FILE is not set: run this verifier through `molecule verify`"
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, str(SCENARIO / "converge.yml"), "--limit", limit],
        env=env, capture_output=True, text=True, check=False,
    )
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == ok, out[-6000:]
    recap = re.search(rf"^{re.escape(limit)}\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)",
                      out, re.MULTILINE)
    assert recap, out[-3000:]
    assert (int(recap.group(2)) == 0) == ok, out[-3000:]
    return int(recap.group(1)), out


def state(host):
    """What a refused run must leave as it was: the main configuration, the drop-in, the report."""
    return {path: host.file(path).content_string if host.file(path).exists else None
            for path in (MAIN_CONFIG, DROPIN, REPORT)}


def assert_refused(out, changed, reason):
    """The toolkit stopped host 1 before changing anything, saying why and what to do."""
    assert changed == 0
    assert "TASK [gpuforge.cluster.nvidia_container_toolkit : Stop when the main configuration does not import " \
           "the drop-in folder]" in out
    failed = out.split("Stop when the main configuration does not import the drop-in folder]", 1)[1]
    # the message as one line, whatever the callback's format (JSON escapes quotes) and wrapping
    message = " ".join(failed.replace('\\"', '"').split())
    for text in (f"{HOST1}: {MAIN_CONFIG} (nvidia_container_toolkit_containerd_config) {reason}",
                 "nvidia_container_toolkit_containerd_dropin_dir (/etc/containerd/conf.d)",
                 "has changed nothing", "Run gpuforge.cluster.containerd on this host first",
                 f'imports = ["{DROPIN_GLOB}"]', "by hand"):
        assert text in message, (text, message[:3000])
    # it stops before the packages, the drop-in and the CDI specification
    for later in ("Find out which toolkit packages are installed", "Write the nvidia runtime drop-in",
                  "Look for nvidia-ctk", "Persist the report as a local fact"):
        assert f"TASK [gpuforge.cluster.nvidia_container_toolkit : {later}]" not in out, later


def test_refuses_a_main_config_that_does_not_import_the_dropin(host1):
    """The role never writes config.toml: without the imports line it stops, naming the remedy."""
    before = state(host1)  # `containerd config default` with `imports = []` (previous test)
    changed, out = ansible_playbook(HOST1, ok=False)
    assert_refused(out, changed, f"does not import {DROPIN} (its imports: none)")
    assert state(host1) == before
    # no main configuration at all: the same refusal, and the role creates none
    host1.check_output(f"mv {MAIN_CONFIG} {MAIN_CONFIG}.away")
    try:
        changed, out = ansible_playbook(HOST1, ok=False)
        assert_refused(out, changed, "does not exist")
        assert not host1.file(MAIN_CONFIG).exists
    finally:
        host1.check_output(f"mv {MAIN_CONFIG}.away {MAIN_CONFIG}")
    assert state(host1) == before


def test_rerun_restores_the_runtime(host1):
    """With the imports line added by hand (the refusal's remedy), the role runs again and containerd sees nvidia."""
    default = host1.file(MAIN_CONFIG).content_string  # `containerd config default` (previous tests)
    write_file(host1, MAIN_CONFIG, default.replace("imports = []\n", f'imports = ["{DROPIN_GLOB}"]\n', 1))
    changed, out = ansible_playbook(HOST1)
    assert changed > 0
    assert "RUNNING HANDLER [gpuforge.cluster.nvidia_container_toolkit : Restart containerd]" in out
    # One line changed (by hand): `imports = []` lists the drop-in folder; the role left the file as it was.
    assert host1.file(MAIN_CONFIG).content_string == default.replace(
        "imports = []\n", f'imports = ["{DROPIN_GLOB}"]\n', 1)
    assert host1.run("systemctl is-active containerd").stdout.strip() == "active"
    assert cri_plugin_ok(host1)
    config = dump(host1)
    assert sorted(config["imports"]) == sorted([MAIN_CONFIG, DROPIN])  # in no fixed order
    cd = cri_containerd(config)
    assert cd["runtimes"]["nvidia"]["options"]["BinaryName"] == RUNTIME
    assert cd["runtimes"]["nvidia"]["options"]["SystemdCgroup"] is True
    # The drop-in follows the new main configuration: runc has the default SystemdCgroup=false now.
    assert cd["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    # A further run changes nothing.
    changed, _ = ansible_playbook(HOST1)
    assert changed == 0
