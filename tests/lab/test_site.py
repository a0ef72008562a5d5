"""site.yml on a 3-host lab ("t-site": a control plane, a CPU worker and a GPU worker
carrying a real A100 capture): the whole site converges, a second run changes nothing
on any host, and a run in check mode (--check --diff) changes nothing either.

Every host gets containerd (held) from the container runtime layer, and kubeadm, kubelet and
kubectl v1.37.2 from the Kubernetes layer (the harness's binaries; what needs a kubelet is skipped). The GPU layer touches
only the host that has an NVIDIA device: driver packages installed and held, nouveau
blacklisted, the nvidia runtime drop-in in force in the running configuration of containerd,
node labels recorded from the capture. The CPU hosts get none of it.
"""

import json
import subprocess
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gpuforge import k8s_harness, lab
from gpuforge.runner import run_playbook

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
CP, W, GPU = "gf-t-site-cp1", "gf-t-site-w1", "gf-t-site-gpu1"
DRIVER_FACT = "/etc/ansible/facts.d/gpuforge_nvidia_driver.fact"
TOOLKIT_FACT = "/etc/ansible/facts.d/gpuforge_nvidia_container_toolkit.fact"
GPU_FILES = (DRIVER_FACT, TOOLKIT_FACT, "/etc/modprobe.d/gpuforge-blacklist-nouveau.conf",
             "/etc/apt/preferences.d/gpuforge-nvidia-driver.pref")


# The tasks of gpuforge.cluster.cluster_model, which every play that needs the model runs first.
MODEL_TASKS = {"Derive the model from the inventory", "Stop when the inventory cannot give a model",
               "Give every host the model"}
APT_LISTS = "/var/lib/apt/lists"
REPORT = ROOT / "artifacts" / "preflight-report.json"


def sh(host, *cmd):
    return subprocess.run(["podman", "exec", host, *cmd], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def runs(lab_factory, tmp_path_factory):
    t_site = lab_factory("t-site", hosts=3, gpu_hosts=1)
    out = tmp_path_factory.mktemp("site")
    k8s_harness.ensure_binaries(quiet=True)  # the lab's kubeadm, kubelet and kubectl (group_vars/all.yml)
    skip = "kubernetes_cluster"  # no kubelet in a container: init, join, CNI and node objects run on real hosts
    first = run_playbook("site.yml", t_site["inventory"], artifacts_dir=out / "first", skip_tags=skip)
    # The role-tag runs (check mode: they write nothing) go on beside the no-op and check runs, on the
    # core the other lab test worker leaves free by then; their durations are not benchmarks.
    pool = ThreadPoolExecutor(max_workers=3)
    tagged = ({tag: pool.submit(run_playbook, "site.yml", t_site["inventory"], artifacts_dir=out / "tags" / tag,
                                tags=tag, check=True) for tag in TAGGED} if first.ok else {})
    pool.shutdown(wait=False)
    second = (run_playbook("site.yml", t_site["inventory"], artifacts_dir=out / "second", skip_tags=skip)
              if first.ok else None)
    # Check mode writes nothing: not the apt lists (made stale first, so that a real run would refresh them),
    # not the preflight report on the controller.
    for host in (CP, W, GPU):
        sh(host, "sh", "-c", f"touch -d '3 days ago' {APT_LISTS} {APT_LISTS}/* /var/lib/apt/periodic/* 2>/dev/null; true")
    before = {host: sh(host, "stat", "-c", "%Y", APT_LISTS).stdout.strip() for host in (CP, W, GPU)}
    report_before = REPORT.stat().st_mtime if REPORT.exists() else None
    check = (run_playbook("site.yml", t_site["inventory"], artifacts_dir=out / "check", check=True, diff=True,
                          skip_tags=skip) if first.ok else None)
    written = {"apt lists": {host: sh(host, "stat", "-c", "%Y", APT_LISTS).stdout.strip() != before[host]
                             for host in (CP, W, GPU)},
               "report": (REPORT.stat().st_mtime if REPORT.exists() else None) != report_before}
    timings = {name: run.duration_s for name, run in (("converge", first), ("no-op", second), ("check", check)) if run}
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "site-lab-timings.json").write_text(json.dumps({"hosts": 3, "seconds": timings}) + "\n")
    return {"first": first, "second": second, "check": check, "inventory": t_site["inventory"], "written": written,
            "tagged": tagged}


def failures(summary):
    return {h: d["failed_tasks"] for h, d in summary.hosts.items() if d["failed_tasks"]}


def test_site_converges(runs):
    first = runs["first"]
    assert first.ok, failures(first)
    assert sorted(h for h in first.hosts if h != "localhost") == sorted([CP, W, GPU])
    assert first.hosts[GPU]["changed"] > 0


def test_second_run_changes_nothing(runs):
    second = runs["second"]
    assert second is not None and second.ok, failures(second) if second else "first run failed"
    changed = {h: d["changed_tasks"] for h, d in second.hosts.items() if d["changed"]}
    assert changed == {}, changed


def test_check_mode_changes_nothing(runs):
    check = runs["check"]
    assert check is not None and check.ok, failures(check) if check else "first run failed"
    changed = {h: d["changed_tasks"] for h, d in check.hosts.items() if d["changed"]}
    assert changed == {}, changed


# The modules that read a host's GPUs and capabilities, by the tasks that run them: preflight's gather is the
# run's, every later one is skipped (the facts are fresh).
GPU_FACTS_TASKS = {"Find the NVIDIA GPUs": "preflight", "Gather the GPU facts (unless this run's preflight did)": "later",
                   "Find the NVIDIA GPUs of this host": "later", "Gather the NVIDIA GPU facts": "later"}
CAPABILITY_TASKS = {"Probe what the host allows": "preflight",
                    "Find out what this host allows (container, modules, sysctls, swap, systemd)": "later",
                    "Find out what this host allows (container, kernel modules, systemd)": "later"}


@pytest.mark.parametrize("tasks", [GPU_FACTS_TASKS, CAPABILITY_TASKS], ids=["gpu facts", "capabilities"])
def test_facts_are_gathered_once_per_run(runs, tasks):
    first = runs["first"]
    assert first.ok
    ran = {}
    for r in first.results:
        if r["task"] in tasks and r["status"] != "skipped":
            ran.setdefault(r["host"], []).append(r["task"])
    preflight = [t for t, when in tasks.items() if when == "preflight"]
    assert ran == {host: preflight for host in (CP, W, GPU)}, ran


def test_check_mode_writes_nothing(runs):
    assert runs["check"] is not None and runs["check"].ok
    assert runs["written"] == {"apt lists": {CP: False, W: False, GPU: False}, "report": False}, runs["written"]


# Each role's tag alone runs that role, on its hosts only (the GPU roles find theirs through the GPU facts
# play, which carries their tags). In check mode, after the converge: nothing may change either.
TAGGED = {
    "common": [CP, W, GPU],
    "containerd": [CP, W, GPU],
    "nvidia_driver": [GPU],
    "nvidia_container_toolkit": [GPU],
    "kubernetes_node": [CP, W, GPU],
}


@pytest.fixture(scope="module")
def tagged(runs):
    assert runs["first"].ok
    return {tag: future.result() for tag, future in runs["tagged"].items()}


@pytest.mark.parametrize("tag", sorted(TAGGED))
def test_a_role_tag_alone_runs_the_role_on_its_hosts(tagged, tag):
    run = tagged[tag]
    assert run.ok, failures(run)
    def role(result):
        return (result.get("role") or "").split(".")[-1]  # the event names collection roles by FQCN or by name

    # Ansible's argument validation of every role of the play is tagged always: it runs under any --tags
    real = [r for r in run.results if r["status"] != "skipped" and not r["task"].startswith("Validating arguments")]
    ran = {r["host"] for r in real if role(r) == tag}
    assert sorted(ran) == sorted(TAGGED[tag]), (tag, sorted(ran))
    others = {role(r) for r in real} - {tag, "preflight", "cluster_model", ""}
    assert others == set(), (tag, others)
    assert all(d["changed"] == 0 for d in run.hosts.values()), {h: d["changed_tasks"] for h, d in run.hosts.items()}


def held_packages(host):
    out = sh(host, "dpkg", "--get-selections").stdout
    return sorted(line.split()[0].split(":")[0] for line in out.splitlines() if line.split()[-1] == "hold")


def test_the_gpu_host_has_the_gpu_layer(runs):
    assert runs["first"].ok
    held = held_packages(GPU)
    assert "nvidia-kernel-dkms" in held and "nvidia-smi" in held, held
    for path in GPU_FILES:
        assert sh(GPU, "test", "-f", path).returncode == 0, f"{GPU}: {path} is missing"
    # containerd from the container runtime layer; the toolkit's drop-in is what it runs with
    toolkit = json.loads(sh(GPU, "cat", TOOLKIT_FACT).stdout)
    assert toolkit["install_mode"] == "configure_only" and toolkit["containerd"]["installed"] is True
    dump = tomllib.loads(sh(GPU, "containerd", "config", "dump").stdout)
    cri = dump["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert cri["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert cri["runc"]["options"]["SystemdCgroup"] is True
    assert "/etc/containerd/conf.d/99-nvidia.toml" in dump["imports"]
    driver = json.loads(sh(GPU, "cat", DRIVER_FACT).stdout)
    assert driver["gpus"] == ["NVIDIA A100-SXM4-80GB"] and driver["gpus_simulated"] is True
    assert driver["driver"]["branch"] == "535" and driver["container"] is True
    assert driver["driver"]["held"] and set(driver["driver"]["held"]) <= set(held), (driver["driver"]["held"], held)
    assert driver["reboot"]["pending"] is True and driver["reboot"]["allowed"] is False
    assert "containers are never rebooted" in driver["reboot"]["not_rebooted_reason"]
    assert "blacklist nouveau" in sh(GPU, "cat", "/etc/modprobe.d/gpuforge-blacklist-nouveau.conf").stdout


def test_cpu_hosts_are_untouched_by_the_gpu_layer(runs):
    assert runs["first"].ok
    for host in (CP, W):
        assert not [p for p in sh(host, "dpkg-query", "-W", "-f", "${Package}\\n").stdout.split() if "nvidia" in p]
        assert held_packages(host) == ["containerd", "runc"]
        runtimes = tomllib.loads(sh(host, "containerd", "config", "dump").stdout)["plugins"][
            "io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
        assert set(runtimes) == {"runc"}
        for path in GPU_FILES:
            assert sh(host, "test", "-e", path).returncode == 1, f"{host}: {path} exists"


def test_node_labels_come_from_the_capture(runs):
    assert runs["first"].ok
    labels = lab.cached_facts(GPU)["gpuforge_gpu_node_labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert labels["nvidia.com/gpu.count"] == "1"
    assert labels["nvidia.com/gpu.memory"] == "81920"
    assert labels["nvidia.com/gpu.family"] == "ampere"
    assert labels["nvidia.com/mig.capable"] == "true"
    assert lab.cached_facts(CP)["gpuforge_gpu_node_labels"] == {}


@pytest.mark.parametrize("host", [CP, W, GPU])
def test_every_host_has_kubeadm_and_kubelet(runs, host):
    assert runs["first"].ok
    assert "v1.37.2" in sh(host, "/usr/local/bin/kubeadm", "version", "-o", "short").stdout
    assert sh(host, "/usr/local/bin/kubelet", "--version").stdout.strip() == "Kubernetes v1.37.2"
    assert sh(host, "systemctl", "is-enabled", "kubelet").stdout.strip() == "enabled"


# --- the container runtime layer alone (site.yml --tags containerd) -----------------------------
# containerd 1.6 on the GPU host takes the CRI plugin section of the toolkit's drop-in: a new sandbox
# image comes into force only through the drop-in's copy, which playbooks/container_runtime.yml renders
# again (its second play, the toolkit's `containerd` entry point) where the containerd role changed
# config.toml. The second run puts the lab's configuration back, so the tests below find the site as
# it converged.

def gpu_cri():
    return tomllib.loads(sh(GPU, "containerd", "config", "dump").stdout)["plugins"]["io.containerd.grpc.v1.cri"]


def test_tags_containerd_brings_a_new_sandbox_image_into_force_on_the_gpu_host(runs, tmp_path):
    assert runs["first"].ok
    before = gpu_cri()
    dropin_before = sh(GPU, "cat", "/etc/containerd/conf.d/99-nvidia.toml").stdout
    image = "mirror.site.internal:5000/k8s/pause:3.10.2"
    assert before["sandbox_image"] != image
    changed = run_playbook("site.yml", runs["inventory"], artifacts_dir=tmp_path / "changed", tags="containerd",
                           limit=GPU, extravars={"containerd_sandbox_image": image})
    assert changed.ok, failures(changed)
    tasks = {(r["play"], r["task"]) for r in changed.results if r["host"] == GPU and r["status"] == "changed"}
    assert ("Container runtime | containerd", "Write the main configuration") in tasks, tasks
    assert ("Container runtime | NVIDIA drop-in follows a changed containerd configuration (containerd 1.x)",
            "Write the nvidia runtime drop-in") in tasks, tasks
    cri = gpu_cri()
    assert cri["sandbox_image"] == image
    assert cri["containerd"]["runtimes"]["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert image in sh(GPU, "cat", "/etc/containerd/conf.d/99-nvidia.toml").stdout
    assert sh(GPU, "systemctl", "is-active", "containerd").stdout.strip() == "active"
    # the GPU node layer did not run: the refresh is the container runtime layer's own
    assert not {p for p, _ in tasks} - {"Container runtime | containerd",
                                        "Container runtime | NVIDIA drop-in follows a changed containerd "
                                        "configuration (containerd 1.x)"}, tasks

    back = run_playbook("site.yml", runs["inventory"], artifacts_dir=tmp_path / "back", tags="container_runtime",
                        limit=GPU)
    assert back.ok, failures(back)
    assert gpu_cri() == before
    assert sh(GPU, "cat", "/etc/containerd/conf.d/99-nvidia.toml").stdout == dropin_before
    again = run_playbook("site.yml", runs["inventory"], artifacts_dir=tmp_path / "again", tags="containerd", limit=GPU)
    assert again.ok and again.hosts[GPU]["changed"] == 0, again.hosts[GPU]["changed_tasks"]


# --- scale.yml and reset.yml ------------------------------------------------------------------
# The cluster's API is the Kubernetes test harness on the controller, whose nodes are the control
# plane and the CPU worker: the GPU host is the new node. No kubelet can run in a lab container,
# so both runs skip what needs one (kubernetes_cluster: init, join, CNI, node objects).

@pytest.fixture(scope="module")
def cluster_of_two(runs, tmp_path_factory):
    assert runs["first"].ok
    harness = k8s_harness.Harness.start("lab-scale", nodes=[k8s_harness.NodeSpec(name=CP, role="control-plane"),
                                                            k8s_harness.NodeSpec(name=W)], build=False)
    yield harness
    harness.stop()


@pytest.fixture(scope="module")
def scale(runs, cluster_of_two, tmp_path_factory):
    out = tmp_path_factory.mktemp("scale")
    run = run_playbook("playbooks/scale.yml", runs["inventory"], artifacts_dir=out, skip_tags="kubernetes_cluster",
                       extravars={"gpuforge_kubeconfig": str(cluster_of_two.kubeconfig)})
    timings = json.loads((ROOT / "artifacts" / "site-lab-timings.json").read_text())
    timings["seconds"]["scale (1 new of 3 hosts)"] = run.duration_s
    (ROOT / "artifacts" / "site-lab-timings.json").write_text(json.dumps(timings) + "\n")
    return run


def test_scale_touches_only_the_new_node_and_the_first_control_plane(scale):
    assert scale.ok, failures(scale)
    touched = sorted({r["host"] for r in scale.results if r["status"] != "skipped"})
    assert touched == sorted(["localhost", GPU, CP])
    # the first control plane only takes part in the Kubernetes layer (packages here; join tokens on real hosts)
    assert {r["play"] for r in scale.results if r["host"] == CP} == {"Kubernetes | kubeadm, kubelet, kubectl"}
    assert scale.hosts[GPU]["changed"] == 0  # the GPU host had converged already


def test_reset_refuses_without_confirmation(runs, cluster_of_two, tmp_path):
    refused = run_playbook("playbooks/reset.yml", runs["inventory"], artifacts_dir=tmp_path / "refused", limit=GPU,
                           extravars={"gpuforge_kubeconfig": str(cluster_of_two.kubeconfig)})
    assert not refused.ok
    assert "gpuforge_reset_confirm=gpuforge" in json.dumps(refused.hosts[GPU]["failed_tasks"])
    assert [(r["host"], r["task"]) for r in refused.results
            if r["task"] not in MODEL_TASKS and not r["task"].startswith("Validating arguments")] == [
        (GPU, "Refuse to run without the explicit confirmation")]


def test_reset_cannot_be_confirmed_away_by_skipping_tags(runs, cluster_of_two, tmp_path):
    """--skip-tags always skips the confirmation's check: every destructive task still needs the confirmation."""
    sh(GPU, "mkdir", "-p", "/etc/cni/net.d", "/etc/kubernetes/gpuforge")
    sh(GPU, "sh", "-c", "echo '{}' > /etc/cni/net.d/10-calico.conflist")
    run = run_playbook("playbooks/reset.yml", runs["inventory"], artifacts_dir=tmp_path / "skipped", limit=GPU,
                       skip_tags="always", extravars={"gpuforge_kubeconfig": str(cluster_of_two.kubeconfig)})
    assert not [r for r in run.results if r["status"] == "changed"], [r for r in run.results if r["status"] == "changed"]
    for path in ("/etc/cni/net.d/10-calico.conflist", "/etc/kubernetes/gpuforge"):
        assert sh(GPU, "test", "-e", path).returncode == 0, f"{path} was wiped without the confirmation"


def test_reset_wipes_kubeadm_and_cni_state(runs, cluster_of_two, tmp_path):
    sh(GPU, "mkdir", "-p", "/etc/cni/net.d", "/var/lib/cni/networks", "/etc/kubernetes/gpuforge")
    sh(GPU, "sh", "-c", "echo '{}' > /etc/cni/net.d/10-calico.conflist")
    reset = run_playbook("playbooks/reset.yml", runs["inventory"], artifacts_dir=tmp_path / "reset", limit=GPU,
                         extravars={"gpuforge_kubeconfig": str(cluster_of_two.kubeconfig),
                                    "gpuforge_reset_confirm": "gpuforge"})
    assert reset.ok, failures(reset)
    for path in ("/etc/cni/net.d", "/var/lib/cni", "/etc/kubernetes/gpuforge"):
        assert sh(GPU, "test", "-e", path).returncode == 1, path
    assert sh(GPU, "systemctl", "is-active", "kubelet").stdout.strip() != "active"
    # the other hosts and the cluster's nodes are untouched
    assert sorted({r["host"] for r in reset.results if r["status"] != "skipped"} - {"localhost"}) == [GPU]
    assert sorted(cluster_of_two.kubectl("get", "nodes", "-o", "name").stdout.split()) == sorted([f"node/{CP}", f"node/{W}"])
