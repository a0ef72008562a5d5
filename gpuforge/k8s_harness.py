"""The Kubernetes test harness: a real control plane on loopback, built from source, with kwok nodes.

    with Harness.start("t") as h:          # or h = Harness.start(...); ...; h.stop()
        h.kubeconfig                       # admin kubeconfig (kubeadm's admin.conf)

What runs: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built by
tests/k8s/build.sh from their Go modules (cached in ~/.cache/gpuforge/k8s/<version>/bin), with
certificates and kubeconfigs made by the real `kubeadm init phase certs|kubeconfig`, and the kwok
controller, which plays the kubelets of fake nodes: it keeps them Ready and runs the pods bound
to them. The flags follow the static-pod manifests kubeadm writes, on 127.0.0.1 only, on ports
picked free at start: nothing stale is ever reused.

Fake nodes mirror an inventory (groups control_plane, workers, gpu_workers) or a node-set file
(tests/k8s/nodes.yml). A GPU node's capacity (`nvidia.com/gpu`, `nvidia.com/mig-*`) and labels
come from the gpu_resources and gpu_labels filters applied to the facts of a real nvidia-smi
capture in shared/fixtures/nvidia-smi, parsed by the GPU facts module's own code.

`gpuforge lab k8s up|down|status` keeps a harness running between commands: its state is in
~/.cache/gpuforge/k8s/clusters/<name>/state.json, and `down` stops exactly the processes it
started (their command lines name that folder).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gpuforge import lab
from gpuforge.shared_inputs import capture_output, nvidia_smi_fixtures

ROOT = Path(__file__).resolve().parents[1]
K8S_DIR = ROOT / "tests" / "k8s"
BUILD_SCRIPT = K8S_DIR / "build.sh"
VERSIONS_FILE = K8S_DIR / "versions.env"
DEFAULT_NODES = K8S_DIR / "nodes.yml"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubeadm", "kubectl", "kubelet",
            "helm", "kwok")
# Start order; stop is the reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
SERVICE_CIDR = "10.96.0.0/12"
POD_CIDR = "10.244.0.0/16"
FAKE_ANNOTATION = "kwok.x-k8s.io/node"
GPU_STRATEGIES = ("none", "single", "mixed")
TEMP_PREFIX = "gpuforge-k8s-"
LIFECYCLE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
# kubeadm reads a loopback advertise address as "the global address on lo" and fails without
# one; this RFC 5737 documentation address only goes into the API server's certificate next to
# 127.0.0.1: nothing listens on it or connects to it.
KUBEADM_ADVERTISE_ADDRESS = "198.51.100.10"


class HarnessError(lab.LabError):
    """The harness cannot build, start or stop; the message says what to look at."""


# --------------------------------------------------------------------------- build

def versions() -> dict:
    """tests/k8s/versions.env as a dict (KUBERNETES_VERSION, ETCD_VERSION, HELM_VERSION, KWOK_VERSION)."""
    found = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            found[key.strip()] = value.strip()
    return found


def bin_dir() -> Path:
    root = Path(os.environ.get("GPUFORGE_K8S_CACHE") or lab.cache_dir() / "k8s").expanduser()
    return root / versions()["KUBERNETES_VERSION"] / "bin"


def ensure_binaries(build: bool = True, quiet: bool = False) -> Path:
    """Runs tests/k8s/build.sh (a no-op when the cache is current); returns the bin folder."""
    if build:
        proc = subprocess.run(["bash", str(BUILD_SCRIPT)], text=True, check=False,
                              stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
        if proc.returncode != 0:
            tail = "" if not quiet else "\n" + "\n".join((proc.stdout or "").splitlines()[-20:])
            raise HarnessError(f"{BUILD_SCRIPT} failed (rc={proc.returncode}){tail}")
    folder = bin_dir()
    missing = [b for b in BINARIES if not os.access(folder / b, os.X_OK)]
    if missing:
        raise HarnessError(f"{folder} lacks {', '.join(missing)}: run {BUILD_SCRIPT}")
    return folder


def kwok_stages() -> Path:
    """kwok's default node and pod stages, copied next to the binaries by build.sh."""
    path = bin_dir().parent / "kwok-stages.yaml"
    if not path.is_file():
        raise HarnessError(f"{path} is missing: run {BUILD_SCRIPT}")
    return path


# --------------------------------------------------------------------------- kubeadm checks

def kubeadm_dry_run_files(stdout: str) -> dict:
    """{path: content} of the `[dryrun] Would write file "<path>" with content:` sections of
    `kubeadm init|join --dry-run` output (static-pod manifests, kubelet configuration, flags)."""
    files = {}
    current = None
    for line in stdout.splitlines():
        match = re.match(r'^\[dryrun\] Would write file "([^"]+)" with content:$', line)
        if match:
            current = files.setdefault(match.group(1), [])
        elif line.startswith("["):
            current = None
        elif current is not None:
            current.append(line)
    return {path: "\n".join(lines) for path, lines in files.items()}


def kubeadm_init_dry_run(config: Path, workdir: Path) -> dict:
    """`kubeadm init --dry-run --config <config>` with the harness kubeadm, preflight errors ignored
    (no kubelet, no container runtime here); writes only into workdir (KUBEADM_INIT_DRYRUN_DIR).
    Returns {rc, stdout, stderr, files (kubeadm_dry_run_files), dir}."""
    workdir.mkdir(parents=True, exist_ok=True)
    # kubeadm refuses 'all' beside a configuration's own ignorePreflightErrors: the copy it reads here lists
    # 'all' in their place (what it would ignore on a node is the configuration's business, not the dry run's).
    docs = list(yaml.safe_load_all(Path(config).read_text()))
    flags = ["--ignore-preflight-errors=all"]
    for doc in docs:
        registration = (doc or {}).get("nodeRegistration") if (doc or {}).get("kind") == "InitConfiguration" else None
        if registration and registration.get("ignorePreflightErrors"):
            registration["ignorePreflightErrors"] = ["all"]
            config = workdir / "kubeadm-config.yaml"
            config.write_text(yaml.safe_dump_all(docs))
            flags = []
    proc = subprocess.run([str(bin_dir() / "kubeadm"), "init", "--dry-run", "--config", str(config), *flags],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "KUBEADM_INIT_DRYRUN_DIR": str(workdir)})
    return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
            "files": kubeadm_dry_run_files(proc.stdout), "dir": workdir}


# --------------------------------------------------------------------------- fake nodes

@dataclass
class NodeSpec:
    """One fake node. gpu: {capture, count (default: the capture's attached GPUs), mig_strategy}."""

    name: str
    role: str = "worker"  # or control-plane
    cpu: str = "32"
    memory: str = "256Gi"
    pods: str = "110"
    labels: dict = field(default_factory=dict)
    gpu: dict | None = None


def _collections_on_path():
    path = str(ROOT / "collections")
    if path not in sys.path:
        sys.path.insert(0, path)


def capture_facts(capture: str | Path, count: int | None = None) -> dict:
    """ansible_facts['nvidia'] of a host whose GPUs are those of a real capture.

    capture: a file in shared/fixtures/nvidia-smi (name or path): `nvidia-smi -q -x` XML, or an
    nvidia_gpu_exporter bundle (`nvidia-smi -q` text plus `-L` for MIG profile names). The
    facts module's parsers read it. count: the node's GPU count; a capture describes fewer
    cards than that (a one-card capture for an 8-GPU node, or a trimmed one that says
    attached_gpus 4 but lists one) is repeated card by card, with distinct index and UUID.
    Default: the capture's attached_gpus.
    """
    _collections_on_path()
    from ansible_collections.gpuforge.cluster.plugins.module_utils import nvidia_smi as smi
    from ansible_collections.gpuforge.cluster.plugins.modules.nvidia_gpu_facts import apply_inventory, base_facts

    path = Path(capture)
    if not path.is_absolute():
        path = nvidia_smi_fixtures() / path
    if not path.is_file():
        raise HarnessError(f"GPU capture {path} does not exist")
    try:
        if path.suffix == ".xml":
            inventory = smi.parse_smi_xml(path.read_text())
        else:
            inventory = smi.parse_smi_query_text(capture_output(path, "nvidia-smi -q"))
            try:
                smi.merge_smi_list(inventory["gpus"], smi.parse_smi_list(
                    capture_output(path, "nvidia-smi -L", "capabilities")))
            except LookupError:
                pass
    except (smi.SmiParseError, LookupError) as exc:
        raise HarnessError(f"GPU capture {path.name}: {exc}") from exc
    facts = base_facts()
    apply_inventory(facts, inventory, "capture")
    facts.update(present=True, simulated=True, nvidia_smi_path=str(path))
    described = facts["gpus"]
    if not described:
        raise HarnessError(f"GPU capture {path.name} describes no GPU")
    wanted = count if count is not None else max(facts["attached_gpus"] or 0, len(described))
    if wanted < 1:
        raise HarnessError(f"GPU count for {path.name} must be at least 1, got {wanted}")
    gpus = []
    for i in range(wanted):
        gpu = copy.deepcopy(described[i % len(described)])
        if i >= len(described):
            gpu["index"] = i
            gpu["uuid"] = f"{gpu.get('uuid') or 'GPU'}-copy{i}"
        gpus.append(gpu)
    facts.update(gpus=gpus, gpu_count=wanted, attached_gpus=max(wanted, facts["attached_gpus"] or 0))
    return facts


def gpu_node_facts(spec: NodeSpec) -> tuple[dict, dict]:
    """(labels, extended resources) of a GPU node, from the gpu_labels and gpu_resources filters."""
    _collections_on_path()
    from ansible.errors import AnsibleFilterError
    from ansible_collections.gpuforge.cluster.plugins.filter.nvidia_labels import gpu_labels, gpu_resources

    gpu = spec.gpu or {}
    strategy = gpu.get("mig_strategy", "none")
    if strategy not in GPU_STRATEGIES:
        raise HarnessError(f"node {spec.name}: gpu.mig_strategy must be one of {', '.join(GPU_STRATEGIES)}")
    facts = capture_facts(gpu["capture"], gpu.get("count"))
    try:
        return gpu_labels(facts, strategy), gpu_resources(facts, strategy)
    except AnsibleFilterError as exc:
        raise HarnessError(f"node {spec.name}: {exc}") from exc


def node_object(spec: NodeSpec, kubelet_version: str) -> dict:
    """The Node kwok will manage: annotation kwok.x-k8s.io/node=fake, role labels and taint, capacity."""
    labels = {"kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "type": "kwok"}
    taints = []
    if spec.role == "control-plane":
        labels["node-role.kubernetes.io/control-plane"] = ""
        taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
    capacity = {"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods, "ephemeral-storage": "1Ti"}
    if spec.gpu:
        gpu_labels, resources = gpu_node_facts(spec)
        labels.update(gpu_labels)
        capacity.update({name: str(count) for name, count in resources.items()})
    labels.update(spec.labels)
    # Every harness node is fake, so they carry no kwok taint: manifests apply unchanged.
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels,
                     "annotations": {FAKE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {"taints": taints},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": kubelet_version,
                         "kubeProxyVersion": kubelet_version, "osImage": "kwok fake node",
                         "containerRuntimeVersion": "kwok", "kernelVersion": "", "machineID": "", "systemUUID": "",
                         "bootID": ""},
        },
    }


def _spec(raw: dict, where: str) -> NodeSpec:
    if not isinstance(raw, dict) or not raw.get("name"):
        raise HarnessError(f"{where}: each node needs a name")
    unknown = set(raw) - {"name", "role", "cpu", "memory", "pods", "labels", "gpu"}
    if unknown:
        raise HarnessError(f"{where}: node {raw['name']}: unknown keys {', '.join(sorted(unknown))}")
    if raw.get("role", "worker") not in ("worker", "control-plane"):
        raise HarnessError(f"{where}: node {raw['name']}: role must be worker or control-plane")
    gpu = raw.get("gpu")
    if gpu is not None and (not isinstance(gpu, dict) or "capture" not in gpu):
        raise HarnessError(f"{where}: node {raw['name']}: gpu needs a capture (a file in shared/fixtures/nvidia-smi)")
    return NodeSpec(**{k: (str(v) if k in ("cpu", "memory", "pods") else v) for k, v in raw.items()})


def load_node_set(path: str | Path = DEFAULT_NODES) -> list[NodeSpec]:
    """A node-set file: {nodes: [{name, role, cpu, memory, pods, labels, gpu: {capture, count, mig_strategy}}]}."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    return [_spec(raw, str(path)) for raw in data.get("nodes") or []]


def nodes_from_inventory(path: str | Path) -> list[NodeSpec]:
    """Fake nodes mirroring an inventory: control_plane hosts, workers, gpu_workers.

    A gpu_workers host takes its capture from `gpuforge_harness_gpu` ({capture, count,
    mig_strategy}) in the inventory; without it, the capture a lab host of that position carries
    (gpuforge/lab.py GPU_FIXTURES: A100 with MIG, T4, A10G), with the mixed MIG strategy.
    """
    tool = Path(sys.executable).with_name("ansible-inventory")
    proc = subprocess.run([str(tool) if tool.exists() else "ansible-inventory", "-i", str(path), "--list"],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "LC_ALL": "C.UTF-8", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"})
    if proc.returncode != 0:
        raise HarnessError(f"ansible-inventory -i {path}: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    hostvars_of = data.get("_meta", {}).get("hostvars", {})

    def members(group, seen=()):
        entry = data.get(group) or {}
        hosts = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            if child not in seen:
                hosts += [h for h in members(child, (*seen, group)) if h not in hosts]
        return hosts

    groups = {g: members(g) for g in ("control_plane", "workers", "gpu_workers")}
    control = groups.get("control_plane", [])
    gpu_hosts = groups.get("gpu_workers", [])
    nodes = []
    for name in control:
        nodes.append(NodeSpec(name=name, role="control-plane"))
    for name in groups.get("workers", []) + gpu_hosts:
        if name in control or any(n.name == name for n in nodes):
            continue
        spec = NodeSpec(name=name)
        if name in gpu_hosts:
            gpu = hostvars_of.get(name, {}).get("gpuforge_harness_gpu")
            if gpu is None:
                gpu = {"capture": lab.GPU_FIXTURES[gpu_hosts.index(name) % len(lab.GPU_FIXTURES)],
                       "mig_strategy": "mixed"}
            spec = _spec({"name": name, "gpu": dict(gpu)}, f"{path}: {name}: gpuforge_harness_gpu")
        nodes.append(spec)
    if not nodes:
        raise HarnessError(f"{path}: no host in control_plane, workers or gpu_workers")
    return nodes


# --------------------------------------------------------------------------- processes

def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held together while picking, so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int, marker: str) -> bool:
    """pid runs and its command line names marker (never signal a pid reused by another program)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        state = "?"
    return state != "Z" and marker in cmdline


def _stop_pid(pid: int, marker: str, timeout: float = 20, own: bool = False) -> None:
    """SIGTERM to the process group, SIGKILL after timeout. own: our child, known alive (no marker check)."""
    if not own and not _pid_alive(pid, marker):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not _pid_alive(pid, marker):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _https_ok(url: str, cafile: str | None, timeout: float = 2) -> tuple[bool, str]:
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:  # noqa: S310 (loopback)
            body = resp.read().decode(errors="replace")
            return resp.status == 200, body
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as exc:
        return False, str(exc)


# --------------------------------------------------------------------------- the harness

class Harness:
    """A running control plane; `Harness.start()` makes one, `stop()` (or `down(name)`) ends it."""

    def __init__(self, name: str, workdir: Path, state: dict):
        self.name = name
        self.workdir = workdir
        self.state = state
        self._popen = {}  # component -> Popen, for the processes this Python process started

    # --- accessors
    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.conf"

    @property
    def bin_dir(self) -> Path:
        return Path(self.state["bin_dir"])

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.state['ports']['kube-apiserver']}"

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.tool("kubectl"), "--kubeconfig", str(self.kubeconfig), *args], input=input,
                              capture_output=True, text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise HarnessError(f"kubectl {' '.join(args)}: rc={proc.returncode}: {proc.stderr.strip()}")
        return proc

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- lifecycle
    @classmethod
    def start(cls, name: str = "harness", nodes: list[NodeSpec] | None = None, workdir: Path | None = None,
              build: bool = True, timeout: float = 180, progress=None) -> "Harness":
        """Builds (when needed) and starts a control plane with kwok nodes; waits until all is ready."""
        say = progress or (lambda _msg: None)
        bins = ensure_binaries(build=build, quiet=progress is None)
        nodes = load_node_set() if nodes is None else nodes
        if workdir is None:
            reap_orphans()
            workdir = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{name}-"))
        workdir.mkdir(parents=True, exist_ok=True)
        names = ("etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
        state = {"name": name, "workdir": str(workdir), "bin_dir": str(bins), "version": versions(), "owner": os.getpid(),
                 "ports": dict(zip(names, free_ports(len(names)))), "pids": {}, "started": time.time()}
        harness = cls(name, workdir, state)
        try:
            harness._pki()
            say("certificates and kubeconfigs: kubeadm init phase certs all / kubeconfig")
            for component in COMPONENTS:
                harness._launch(component)
                harness._save_state()
                harness._wait_component(component, timeout)
                say(f"{component} ready (port {state['ports'].get(component)})")
                if component == "kube-apiserver":
                    harness._cluster_admins()
            harness._bootstrap(nodes, timeout)
            say(f"{len(nodes)} kwok nodes Ready: {', '.join(n.name for n in nodes)}")
        except BaseException:
            harness.stop(keep_workdir=True)
            raise
        return harness

    def _run(self, *args: str) -> str:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise HarnessError(f"{' '.join(args)}: rc={proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    def kubeadm_config(self) -> str:
        """The kubeadm configuration the certificates and kubeconfigs are made from."""
        port = self.state["ports"]["kube-apiserver"]
        version = self.state["version"]["KUBERNETES_VERSION"]
        return yaml.safe_dump_all([
            {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
             "localAPIEndpoint": {"advertiseAddress": KUBEADM_ADVERTISE_ADDRESS, "bindPort": port},
             "nodeRegistration": {"name": "gpuforge-harness", "taints": []}},
            {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
             "clusterName": "gpuforge-harness", "kubernetesVersion": version,
             "certificatesDir": str(self.workdir / "pki"),
             "controlPlaneEndpoint": f"127.0.0.1:{port}",
             "networking": {"serviceSubnet": SERVICE_CIDR, "podSubnet": POD_CIDR, "dnsDomain": "cluster.local"},
             "apiServer": {"certSANs": ["127.0.0.1", "localhost"]},
             "etcd": {"local": {"dataDir": str(self.workdir / "etcd"), "serverCertSANs": ["127.0.0.1"],
                                "peerCertSANs": ["127.0.0.1"]}}},
        ], sort_keys=False)

    def _pki(self):
        config = self.workdir / "kubeadm.yaml"
        config.write_text(self.kubeadm_config())
        kubeadm = self.tool("kubeadm")
        self._run(kubeadm, "init", "phase", "certs", "all", "--config", str(config))
        for kind in ("super-admin", "admin", "controller-manager", "scheduler"):
            self._run(kubeadm, "init", "phase", "kubeconfig", kind, "--config", str(config),
                      "--kubeconfig-dir", str(self.workdir))
            # kubeadm points the controller-manager's and scheduler's kubeconfigs at the advertise
            # address (the local endpoint): every client of the harness talks to 127.0.0.1.
            path = self.workdir / f"{kind}.conf"
            data = yaml.safe_load(path.read_text())
            for entry in data["clusters"]:
                entry["cluster"]["server"] = self.server
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            path.chmod(0o600)
        (self.workdir / "logs").mkdir(exist_ok=True)

    def _argv(self, component: str) -> list[str]:
        pki = self.workdir / "pki"
        ports = self.state["ports"]
        w = self.workdir
        if component == "etcd":
            return [self.tool("etcd"), "--name=gpuforge-harness", f"--data-dir={w / 'etcd'}",
                    f"--listen-client-urls=https://127.0.0.1:{ports['etcd']}",
                    f"--advertise-client-urls=https://127.0.0.1:{ports['etcd']}",
                    f"--listen-peer-urls=https://127.0.0.1:{ports['etcd-peer']}",
                    f"--initial-advertise-peer-urls=https://127.0.0.1:{ports['etcd-peer']}",
                    f"--initial-cluster=gpuforge-harness=https://127.0.0.1:{ports['etcd-peer']}",
                    f"--cert-file={pki}/etcd/server.crt", f"--key-file={pki}/etcd/server.key",
                    f"--trusted-ca-file={pki}/etcd/ca.crt", "--client-cert-auth=true",
                    f"--peer-cert-file={pki}/etcd/peer.crt", f"--peer-key-file={pki}/etcd/peer.key",
                    f"--peer-trusted-ca-file={pki}/etcd/ca.crt", "--peer-client-cert-auth=true",
                    "--snapshot-count=10000", "--unsafe-no-fsync=true", "--quota-backend-bytes=2147483648"]
        if component == "kube-apiserver":
            return [self.tool("kube-apiserver"), "--advertise-address=127.0.0.1", "--bind-address=127.0.0.1",
                    f"--secure-port={ports['kube-apiserver']}", "--allow-privileged=true",
                    "--authorization-mode=Node,RBAC", f"--client-ca-file={pki}/ca.crt",
                    "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
                    f"--etcd-cafile={pki}/etcd/ca.crt", f"--etcd-certfile={pki}/apiserver-etcd-client.crt",
                    f"--etcd-keyfile={pki}/apiserver-etcd-client.key",
                    f"--etcd-servers=https://127.0.0.1:{ports['etcd']}",
                    f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
                    f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
                    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
                    f"--proxy-client-cert-file={pki}/front-proxy-client.crt",
                    f"--proxy-client-key-file={pki}/front-proxy-client.key",
                    "--requestheader-allowed-names=front-proxy-client",
                    f"--requestheader-client-ca-file={pki}/front-proxy-ca.crt",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-username-headers=X-Remote-User",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki}/sa.pub",
                    f"--service-account-signing-key-file={pki}/sa.key",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    f"--tls-cert-file={pki}/apiserver.crt", f"--tls-private-key-file={pki}/apiserver.key",
                    # 127.0.0.1 cannot be the kubernetes Service's endpoint (kwokctl does the same)
                    "--endpoint-reconciler-type=none"]
        if component == "kube-controller-manager":
            conf = w / "controller-manager.conf"
            return [self.tool("kube-controller-manager"), f"--authentication-kubeconfig={conf}",
                    f"--authorization-kubeconfig={conf}", f"--kubeconfig={conf}", "--bind-address=127.0.0.1",
                    f"--secure-port={ports['kube-controller-manager']}", f"--client-ca-file={pki}/ca.crt",
                    "--cluster-name=gpuforge-harness", f"--cluster-signing-cert-file={pki}/ca.crt",
                    f"--cluster-signing-key-file={pki}/ca.key", "--controllers=*,bootstrapsigner,tokencleaner",
                    "--leader-elect=false", f"--requestheader-client-ca-file={pki}/front-proxy-ca.crt",
                    f"--root-ca-file={pki}/ca.crt", f"--service-account-private-key-file={pki}/sa.key",
                    f"--service-cluster-ip-range={SERVICE_CIDR}", "--use-service-account-credentials=true"]
        if component == "kube-scheduler":
            conf = w / "scheduler.conf"
            return [self.tool("kube-scheduler"), f"--authentication-kubeconfig={conf}",
                    f"--authorization-kubeconfig={conf}", f"--kubeconfig={conf}", "--bind-address=127.0.0.1",
                    f"--secure-port={ports['kube-scheduler']}", "--leader-elect=false"]
        if component == "kwok":
            return [self.tool("kwok"), f"--kubeconfig={w / 'admin.conf'}", "--config", str(w / "kwok.yaml"),
                    f"--manage-nodes-with-annotation-selector={FAKE_ANNOTATION}=fake",
                    f"--server-address=127.0.0.1:{ports['kwok']}", "--node-ip=127.0.0.1",
                    "--cidr=10.244.0.0/16", "--node-lease-duration-seconds=40"]
        raise ValueError(component)

    def _launch(self, component: str):
        if component == "kwok":
            # kwok's configuration: its default node and pod stages (v0.8 needs them spelled out).
            shutil.copyfile(kwok_stages(), self.workdir / "kwok.yaml")
        log = open(self.workdir / "logs" / f"{component}.log", "ab")  # noqa: SIM115 (the child keeps it)
        proc = subprocess.Popen(self._argv(component), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.workdir, start_new_session=True)
        log.close()
        self.state["pids"][component] = proc.pid
        self._popen[component] = proc

    def _log_tail(self, component: str, lines: int = 25) -> str:
        path = self.workdir / "logs" / f"{component}.log"
        text = path.read_text(errors="replace") if path.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _alive(self, component: str) -> bool:
        proc = self._popen.get(component)
        if proc is not None:  # started by this process: ask the kernel through wait()
            return proc.poll() is None
        pid = self.state["pids"].get(component)
        return bool(pid) and _pid_alive(pid, str(self.workdir))

    def _wait(self, what: str, component: str, check, timeout: float):
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if component and not self._alive(component):
                raise HarnessError(f"{component} exited while waiting for {what}; "
                                   f"its log ({self.workdir}/logs/{component}.log) ends:\n{self._log_tail(component)}")
            ok, last = check()
            if ok:
                return
            time.sleep(0.25)
        raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what} ({last.strip()[:300]}); "
                           f"logs in {self.workdir}/logs")

    def _wait_component(self, component: str, timeout: float):
        ports = self.state["ports"]
        ca = str(self.workdir / "pki" / "ca.crt")
        if component == "etcd":
            # the API server's own readiness checks etcd; here only that it listens
            self._wait("etcd to listen", component, lambda: (port_open(ports["etcd"]), "not listening"), timeout)
        elif component == "kube-apiserver":
            self._wait("kube-apiserver /readyz", component,
                       lambda: _https_ok(f"{self.server}/readyz", ca), timeout)
        elif component in ("kube-controller-manager", "kube-scheduler"):
            self._wait(f"{component} /healthz", component,
                       lambda: _https_ok(f"https://127.0.0.1:{ports[component]}/healthz", None), timeout)
        elif component == "kwok":
            self._wait("kwok /healthz", component,
                       lambda: _https_ok(f"http://127.0.0.1:{ports['kwok']}/healthz", None), timeout)

    def _cluster_admins(self):
        """Binds kubeadm's admin group to cluster-admin, as `kubeadm init` does after the API server is up."""
        # kubeadm's admin.conf user is in group kubeadm:cluster-admins, bound to cluster-admin
        # by `kubeadm init` (phase bootstrap-token/upload-config) with the super-admin credentials.
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": "kubeadm:cluster-admins"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                 "name": "kubeadm:cluster-admins"}]}
        proc = subprocess.run([self.tool("kubectl"), "--kubeconfig", str(self.workdir / "super-admin.conf"), "apply",
                               "-f", "-"], input=json.dumps(binding), capture_output=True, text=True, timeout=60,
                              check=False)
        if proc.returncode != 0:
            raise HarnessError(f"binding kubeadm:cluster-admins to cluster-admin failed: {proc.stderr.strip()}")

    def _bootstrap(self, nodes: list[NodeSpec], timeout: float):
        """The fake nodes, then what tests need from the controllers (the default ServiceAccount)."""
        from kubernetes import client

        with self.api_client() as api_client:
            core = client.CoreV1Api(api_client)
            version = self.state["version"]["KUBERNETES_VERSION"]
            statuses = {}
            for spec in nodes:
                body = node_object(spec, version)
                statuses[spec.name] = body.pop("status")
                core.create_node(body)
                # the API server ignores status on create: set it as a kubelet would
                core.patch_node_status(spec.name, {"status": statuses[spec.name]})
            self.state["nodes"] = [n.name for n in nodes]
            self._save_state()

            def ready():
                # Ready, and the node lifecycle controller has lifted its not-ready taint
                items = core.list_node().items
                not_ready = [n.metadata.name for n in items
                             if not any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
                             or any(t.key in LIFECYCLE_TAINTS for t in (n.spec.taints or []))]
                # kwok fills nodeInfo with its own version when its first status write raced ours:
                # put the node's kubelet version back (roles such as kubernetes_upgrade read it)
                for node in items:
                    if node.metadata.name in statuses and (node.status.node_info is None
                                                           or node.status.node_info.kubelet_version != version):
                        core.patch_node_status(node.metadata.name, {"status": statuses[node.metadata.name]})
                        not_ready.append(node.metadata.name)
                return not not_ready and len(items) == len(nodes), f"not Ready yet: {', '.join(not_ready)}"

            def default_service_account():
                names = [sa.metadata.name for sa in core.list_namespaced_service_account("default").items]
                return "default" in names, "no default ServiceAccount yet"

            self._wait("the kwok nodes to be Ready", "kwok", ready, timeout)
            self._wait("the default ServiceAccount", "kube-controller-manager", default_service_account, timeout)

    def _save_state(self):
        (self.workdir / "state.json").write_text(json.dumps(self.state, indent=2))

    def stop(self, keep_workdir: bool = False) -> list[str]:
        """Stops every process in reverse start order; checks no port is left listening."""
        stopped = []
        for component in reversed(COMPONENTS):
            pid = self.state["pids"].get(component)
            proc = self._popen.get(component)
            own = proc is not None and proc.poll() is None
            if pid and (own or _pid_alive(pid, str(self.workdir))):
                _stop_pid(pid, str(self.workdir), own=own)
                stopped.append(component)
        for proc in self._popen.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        busy = [f"{c}:{p}" for c, p in self.state["ports"].items() if port_open(p)]
        if busy:
            time.sleep(1)
            busy = [f"{c}:{p}" for c, p in self.state["ports"].items() if port_open(p)]
        if not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if busy:
            raise HarnessError(f"ports still listening after stop: {', '.join(busy)}")
        return stopped


def reap_orphans() -> list[str]:
    """Stops harnesses in temporary folders whose owner (a test run killed before its teardown) is gone."""
    reaped = []
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*/state.json"):
        try:
            state = json.loads(path.read_text())
            owner = int(state.get("owner") or 0)
        except (OSError, ValueError):
            continue
        if owner and Path(f"/proc/{owner}").exists():
            continue
        try:
            Harness(state.get("name", "?"), path.parent, state).stop(keep_workdir=False)
        except HarnessError:
            pass  # its ports were taken by someone else since: its processes are gone all the same
        reaped.append(str(path.parent))
    return reaped


# --------------------------------------------------------------------------- named harnesses (CLI)

def state_dir(name: str) -> Path:
    return lab.cache_dir() / "k8s" / "clusters" / name


def load(name: str) -> Harness | None:
    """The harness `up` started under this name, or None."""
    workdir = state_dir(name)
    path = workdir / "state.json"
    if not path.is_file():
        return None
    return Harness(name, workdir, json.loads(path.read_text()))


def up(name: str = "harness", nodes: list[NodeSpec] | None = None, progress=None) -> Harness:
    """Starts a named harness (replacing a stopped or broken one of that name)."""
    current = load(name)
    if current is not None:
        if all(current._alive(c) for c in COMPONENTS) and \
                _https_ok(f"{current.server}/readyz", str(current.workdir / "pki" / "ca.crt"))[0]:
            raise HarnessError(f"harness {name} is already running ({current.kubeconfig}); "
                               f"`gpuforge lab k8s down --name {name}` first")
        current.stop()
    workdir = state_dir(name)
    shutil.rmtree(workdir, ignore_errors=True)
    return Harness.start(name, nodes=nodes, workdir=workdir, progress=progress)


def down(name: str = "harness") -> list[str]:
    current = load(name)
    if current is None:
        shutil.rmtree(state_dir(name), ignore_errors=True)
        return []
    return current.stop()
