"""The lab: Debian hosts as podman containers booting systemd on this machine.

    ensure_image()  builds (or reuses) the base image without a registry
    up()            starts a lab and writes its Ansible inventory
    down()          removes a lab
    status()        lists lab hosts

Everything a lab owns carries the label ``gpuforge.lab=<name>``: containers
``gf-<name>-cp1..``, ``gf-<name>-w1..``, ``gf-<name>-gpu1..`` on the network
``gf-<name>``. See docs/lab.md.
"""

import configparser
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

IMAGE = "localhost/gpuforge-lab"
RELEASES = ("bookworm", "trixie")
INCLUDES = ("systemd", "systemd-sysv", "python3", "python3-apt", "iproute2", "procps",
            "ca-certificates", "dbus", "sudo", "kmod")
COMPONENTS = ("main", "contrib", "non-free", "non-free-firmware")
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
SOURCE_DATE_EPOCH = 1735689600  # 2025-01-01: fixed, so that builds are reproducible
IMPORT_CHANGES = ('CMD ["/sbin/init"]', "STOPSIGNAL SIGRTMIN+3")
LABEL = "gpuforge.lab"
# role (label gpuforge.role) -> container name prefix; in inventory groups control_plane,
# workers, and gpu_workers (a child of workers)
ROLES = {"cp": "cp", "worker": "w", "gpu": "gpu"}
DEFAULT_INVENTORY = Path("inventories/lab/hosts.yml")
# Lab GPU hosts have no GPU: each one carries a real `nvidia-smi -q -x` capture from
# shared/fixtures/nvidia-smi (read-only, at SIMULATED_SMI_XML), which the GPU facts module
# reads instead of running nvidia-smi (inventories/lab/group_vars/gpu_workers.yml).
# gpu1, gpu2, gpu3, gpu4... cycle through these cards.
GPU_FIXTURES = ("telegraf__a100-sxm4-v12.xml", "telegraf__tesla-t4.xml", "telegraf__a10g.xml")
SIMULATED_SMI_XML = "/var/lib/gpuforge/simulated/nvidia-smi.xml"


class LabError(RuntimeError):
    """A lab operation failed; the message says what to do."""


# --------------------------------------------------------------------------- helpers

def repo_root():
    """The checkout: the folder holding site.yml and ansible.cfg (package's parent, else cwd or above)."""
    here = Path.cwd().resolve()
    for cand in (Path(__file__).resolve().parents[1], here, *here.parents):
        if (cand / "site.yml").is_file() and (cand / "ansible.cfg").is_file():
            return cand
    raise LabError("cannot find the gpuforge checkout (a folder with site.yml and ansible.cfg)")


def cache_dir():
    return Path(os.environ.get("GPUFORGE_CACHE") or Path.home() / ".cache" / "gpuforge").expanduser()


def fact_cache_dir():
    """Where Ansible caches facts for this checkout (ansible.cfg fact_caching_connection)."""
    path = os.environ.get("ANSIBLE_CACHE_PLUGIN_CONNECTION")
    base = Path.cwd()
    if not path:
        cfg = configparser.ConfigParser(interpolation=None)
        cfg_file = repo_root() / "ansible.cfg"
        cfg.read(cfg_file)
        path = cfg.get("defaults", "fact_caching_connection", fallback="~/.cache/gpuforge/facts")
        base = cfg_file.parent
    return base / Path(path).expanduser()


def podman(*args, check=True, timeout=300):
    try:
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise LabError("podman is not installed: run scripts/bootstrap.sh") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"podman {' '.join(args)} did not finish in {timeout} s") from None
    if check and proc.returncode != 0:
        raise LabError(f"podman {' '.join(args)} failed (rc {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _exists(kind, name):
    return subprocess.run(["podman", kind, "exists", name], capture_output=True, check=False).returncode == 0


def _inspect(kind, *names):
    """`podman <kind> inspect` of the names that exist (others are skipped)."""
    if not names:
        return []
    out = podman(kind, "inspect", *names, check=False)
    return json.loads(out or "[]") or []


# --------------------------------------------------------------------------- image

def recipe(release="bookworm"):
    """Everything that defines the image; its hash keys the tarball cache and the image tag."""
    if release not in RELEASES:
        raise LabError(f"unknown release {release!r} (known: {', '.join(RELEASES)})")
    comps = " ".join(COMPONENTS)
    return {
        "release": release,
        "variant": "minbase",
        "include": list(INCLUDES),
        "components": list(COMPONENTS),
        "sources": [
            f"deb {MIRROR} {release} {comps}",
            f"deb {MIRROR} {release}-updates {comps}",
            f"deb {SECURITY_MIRROR} {release}-security {comps}",
        ],
        "source_date_epoch": SOURCE_DATE_EPOCH,
        "import_changes": list(IMPORT_CHANGES),
    }


def recipe_hash(release="bookworm"):
    return hashlib.sha256(json.dumps(recipe(release), sort_keys=True).encode()).hexdigest()[:12]


def ensure_image(release="bookworm", rebuild=False):
    """Returns the image name `localhost/gpuforge-lab:<release>`, building it only when needed.

    The podman image carries the label gpuforge.recipe=<hash> and the extra tag
    <release>-<hash>; the mmdebstrap tarball is cached as
    $GPUFORGE_CACHE/images/gpuforge-lab-<release>-<hash>.tar (default ~/.cache/gpuforge).
    """
    digest = recipe_hash(release)
    name, hashed = f"{IMAGE}:{release}", f"{IMAGE}:{release}-{digest}"
    if not rebuild:
        current = _inspect("image", name)
        if current and (current[0].get("Labels") or {}).get("gpuforge.recipe") == digest:
            if not _exists("image", hashed):
                podman("tag", name, hashed)
            return name
        if _exists("image", hashed):
            log.info("image %s: re-tagging %s", name, hashed)
            podman("tag", hashed, name)
            return name
    tarball = cache_dir() / "images" / f"gpuforge-lab-{release}-{digest}.tar"
    if rebuild or not tarball.is_file():
        _build_tarball(recipe(release), tarball)
    log.info("image %s: importing %s", name, tarball)
    changes = [*IMPORT_CHANGES, f"LABEL gpuforge.recipe={digest}", f"LABEL gpuforge.release={release}"]
    podman("import", *(a for c in changes for a in ("--change", c)), str(tarball), hashed)
    podman("tag", hashed, name)
    return name


def _build_tarball(rcp, tarball):
    if not shutil.which("mmdebstrap"):
        raise LabError("mmdebstrap is not installed: run scripts/bootstrap.sh")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=tarball.name + ".", suffix=".tmp", dir=tarball.parent)
    os.close(fd)
    cmd = ["mmdebstrap", f"--variant={rcp['variant']}", "--format=tar",
           f"--include={','.join(rcp['include'])}", f"--components={','.join(rcp['components'])}",
           rcp["release"], tmp, *rcp["sources"]]
    log.info("image: building %s with mmdebstrap (about a minute)", tarball.name)
    start = time.monotonic()
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(rcp["source_date_epoch"]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        os.unlink(tmp)
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise LabError(f"mmdebstrap failed (rc {proc.returncode}):\n{tail}")
    os.chmod(tmp, 0o644)
    os.replace(tmp, tarball)
    log.info("image: built in %.0f s", time.monotonic() - start)


# --------------------------------------------------------------------------- lab

def plan(name="lab", hosts=3, gpu_hosts=1, control_planes=1):
    """[(container name, role)] for a lab; raises LabError on an impossible shape."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise LabError(f"lab name {name!r}: use lower-case letters, digits and '-'")
    if hosts < 1 or gpu_hosts < 0 or control_planes < 1:
        raise LabError("need hosts >= 1, control_planes >= 1 and gpu_hosts >= 0")
    if control_planes % 2 == 0:
        raise LabError(f"control_planes must be odd (etcd quorum), got {control_planes}")
    if hosts > 1 and control_planes >= hosts:
        raise LabError(f"control_planes ({control_planes}) must be fewer than hosts ({hosts})")
    if hosts == 1:
        control_planes = 1
    if gpu_hosts > hosts - control_planes:
        raise LabError(f"gpu_hosts ({gpu_hosts}) must be at most hosts - control_planes "
                       f"({hosts - control_planes})")
    counts = {"cp": control_planes, "worker": hosts - control_planes - gpu_hosts, "gpu": gpu_hosts}
    return [(f"gf-{name}-{prefix}{i}", role) for role, prefix in ROLES.items() for i in range(1, counts[role] + 1)]


def gpu_fixture(cname):
    """The capture a lab GPU host `gf-<lab>-gpuN` carries: (file name, path on this machine)."""
    from gpuforge.shared_inputs import SharedDirNotFound, nvidia_smi_fixtures

    index = int(re.search(r"(\d+)$", cname).group(1)) - 1
    fname = GPU_FIXTURES[index % len(GPU_FIXTURES)]
    try:
        path = nvidia_smi_fixtures() / fname
    except SharedDirNotFound as exc:
        raise LabError(f"lab GPU host {cname} needs a real nvidia-smi capture: {exc}") from exc
    if not path.is_file():
        raise LabError(f"lab GPU host {cname}: capture {path} is missing")
    return fname, path


def _lab_containers(name=None):
    label = LABEL if name is None else f"{LABEL}={name}"
    ids = podman("ps", "-a", "-q", "--no-trunc", "--filter", f"label={label}").split()
    return _inspect("container", *ids)


def _ip(info, network=None):
    nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
    if network:
        return (nets.get(network) or {}).get("IPAddress") or None
    return next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), None)


def cached_facts(host):
    """The facts Ansible cached for `host` (jsonfile cache of ansible.cfg), or None."""
    cache = fact_cache_dir()
    for name in (f"s1_{host}", host):
        path = cache / name
        if path.is_file():
            data = json.loads(path.read_text())
            # ansible-core >= 2.19 wraps the facts, {"__payload__": "<json>"}, and keeps the
            # origin of templated values: {"value": ..., "tags": [...], "__ansible_type": ...}
            return _untag(json.loads(data["__payload__"]) if "__payload__" in data else data)
    return None


def _untag(value):
    if isinstance(value, dict):
        if "__ansible_type" in value and "value" in value:
            return _untag(value["value"])
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def _clear_facts(hosts):
    cache = fact_cache_dir()
    if not cache.is_dir():
        return
    wanted = set(hosts)
    for path in cache.iterdir():
        # jsonfile cache files are named <host>, or s<schema>_<host> (ansible-core >= 2.19)
        m = re.fullmatch(r"(?:s\d+_)?(.+)", path.name)
        if m and m.group(1) in wanted:
            path.unlink(missing_ok=True)


def _resolve_inventory(inventory):
    inventory = Path(inventory).expanduser()
    return inventory if inventory.is_absolute() else repo_root() / inventory


def _wait_booted(names, timeout):
    """Waits until systemd in each container reports running or degraded."""
    deadline = time.monotonic() + timeout
    pending = {n: "unknown" for n in names}
    while pending:
        for n in list(pending):
            proc = subprocess.run(["podman", "exec", n, "systemctl", "is-system-running"],
                                  capture_output=True, text=True, check=False)
            state = proc.stdout.strip() or proc.stderr.strip() or "unknown"
            if state in ("running", "degraded"):
                del pending[n]
            else:
                pending[n] = state
        if not pending:
            return
        if time.monotonic() > deadline:
            detail = ", ".join(f"{n}: {s}" for n, s in pending.items())
            raise LabError(f"hosts did not boot within {timeout} s ({detail}); "
                           f"see `podman logs <host>` and `podman exec <host> systemctl --failed`")
        time.sleep(0.5)


def inventory_data(name, hosts):
    """The inventory dict for [{name, role, ip}] in the product's group layout."""
    def group(role):
        return {h["name"]: {"ansible_host": h["name"], "gpuforge_node_ip": h["ip"]}
                for h in hosts if h["role"] == role}
    return {"all": {"children": {"k8s_cluster": {"children": {
        "control_plane": {"hosts": group("cp")},
        "workers": {"hosts": group("worker"), "children": {"gpu_workers": {"hosts": group("gpu")}}},
    }}}}}


def _marker(name):
    return f"# gpuforge-lab: {name}"


def write_inventory(path, name, hosts):
    body = yaml.safe_dump(inventory_data(name, hosts), default_flow_style=False, sort_keys=False)
    text = (f"# Written by `gpuforge lab up --name {name}`; rewritten on every `up`, removed by `down`.\n"
            f"# Connection variables come from group_vars/ beside this file (inventories/lab/group_vars).\n"
            f"{_marker(name)}\n---\n{body}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def up(name="lab", hosts=3, gpu_hosts=1, control_planes=1, inventory=DEFAULT_INVENTORY, network=None,
       release="bookworm", boot_timeout=120):
    """Starts (or reuses) the lab `name` and writes its inventory; returns what it did.

    Hosts already running from the current image are reused; hosts the request no
    longer includes are removed. `inventory` relative paths are taken from the repo
    root; None writes no inventory. `network` defaults to gf-<name>.
    """
    start = time.monotonic()
    wanted = plan(name, hosts, gpu_hosts, control_planes)
    image = ensure_image(release)
    image_id = _inspect("image", image)[0]["Id"]
    network = network or f"gf-{name}"
    if not _exists("network", network):
        podman("network", "create", "--label", f"{LABEL}={name}", network)

    roles = dict(wanted)
    removed, reused = [], {}
    for info in _lab_containers(name):
        cname = info["Name"].lstrip("/")
        labels = info["Config"].get("Labels") or {}
        keep = (cname in roles and info["State"]["Status"] == "running" and info["Image"] == image_id
                and labels.get("gpuforge.role") == roles[cname]
                and labels.get("gpuforge.gpu_fixture", "") == (gpu_fixture(cname)[0] if roles[cname] == "gpu" else "")
                and network in ((info.get("NetworkSettings") or {}).get("Networks") or {}))
        if keep:
            reused[cname] = info
        else:
            removed.append(cname)
    if removed:
        podman("rm", "-f", "-t", "2", *removed)
    created = [n for n, _ in wanted if n not in reused]
    for cname in created:
        role = roles[cname]
        extra = []
        if role == "gpu":
            fname, path = gpu_fixture(cname)
            extra = ["--label", f"gpuforge.gpu_fixture={fname}", "--volume", f"{path}:{SIMULATED_SMI_XML}:ro"]
        podman("run", "-d", "--name", cname, "--hostname", cname, "--network", network,
               "--systemd=always", "--pull=never", "--no-hosts", "--sysctl", "net.ipv4.ip_forward=1",
               "--label", f"{LABEL}={name}", "--label", f"gpuforge.role={role}", *extra,
               image, "/sbin/init")
    _clear_facts(created)
    _wait_booted([n for n, _ in wanted], boot_timeout)

    infos = {i["Name"].lstrip("/"): i for i in _inspect("container", *(n for n, _ in wanted))}
    host_list = [{"name": n, "role": r, "id": infos[n]["Id"], "ip": _ip(infos[n], network),
                  "created": n in created} for n, r in wanted]
    inv_path = None
    if inventory is not None:
        inv_path = _resolve_inventory(inventory)
        write_inventory(inv_path, name, host_list)
    result = {
        "name": name, "network": network, "image": image, "image_id": image_id,
        "inventory": str(inv_path) if inv_path else None, "hosts": host_list,
        "created": created, "reused": sorted(reused), "removed": sorted(set(removed) - set(created)),
        "duration_s": round(time.monotonic() - start, 1),
    }
    log.debug("lab %s up: %d hosts (%d created, %d reused) in %.1f s",
              name, len(host_list), len(created), len(reused), result["duration_s"])
    return result


def down(name="lab", inventory=None):
    """Removes the lab's containers, network, fact-cache files and inventory (if written for it)."""
    containers = _lab_containers(name)
    names = [i["Name"].lstrip("/") for i in containers]
    nets = {n for i in containers for n in ((i.get("NetworkSettings") or {}).get("Networks") or {})}
    if names:
        podman("rm", "-f", "-t", "2", *names)
    _clear_facts(names)
    removed_nets = []
    for net in sorted(nets | {f"gf-{name}"}):
        info = _inspect("network", net)
        if info and (info[0].get("labels") or {}).get(LABEL) == name:
            podman("network", "rm", "-f", net)
            removed_nets.append(net)
    removed_inv = None
    candidates = [DEFAULT_INVENTORY] + ([inventory] if inventory is not None else [])
    for cand in candidates:
        path = _resolve_inventory(cand)
        if path.is_file() and _marker(name) in path.read_text().splitlines()[:5]:
            path.unlink()
            removed_inv = str(path)
    log.debug("lab %s down: removed %d hosts", name, len(names))
    return {"name": name, "removed": names, "networks": removed_nets, "inventory": removed_inv}


def status(name=None):
    """[{name, lab, role, state, ip}] of every lab host (of lab `name` if given)."""
    rows = []
    for info in _lab_containers(name):
        labels = info["Config"].get("Labels") or {}
        rows.append({"name": info["Name"].lstrip("/"), "lab": labels.get(LABEL), "role": labels.get("gpuforge.role"),
                     "state": info["State"]["Status"], "ip": _ip(info)})
    order = list(ROLES)
    return sorted(rows, key=lambda r: (r["lab"] or "", order.index(r["role"]) if r["role"] in order else len(order),
                                       natural_key(r["name"])))


def natural_key(text):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]
