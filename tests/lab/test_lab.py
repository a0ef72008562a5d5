"""gpuforge.lab against podman: up, reuse, reshape, status, down (lab "t-lab")."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gpuforge import lab

ROOT = Path(__file__).resolve().parents[2]
NAME = "t-lab"
CP, GPU, W = "gf-t-lab-cp1", "gf-t-lab-gpu1", "gf-t-lab-w1"


def sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def t_lab(lab_factory):
    return lab_factory(NAME, hosts=2, gpu_hosts=1)


@pytest.mark.parametrize("kw, error", [
    ({"hosts": 3, "control_planes": 2}, "must be odd"),
    ({"hosts": 3, "control_planes": 3, "gpu_hosts": 0}, "fewer than hosts"),
    ({"hosts": 3, "gpu_hosts": 3}, "at most hosts - control_planes"),
    ({"hosts": 0}, "hosts >= 1"),
    ({"name": "Bad_Name"}, "lab name"),
])
def test_plan_rejects_impossible_shapes(kw, error):
    with pytest.raises(lab.LabError, match=error):
        lab.plan(**kw)


def test_plan_names_and_roles():
    assert lab.plan("x", hosts=6, gpu_hosts=2, control_planes=3) == [
        ("gf-x-cp1", "cp"), ("gf-x-cp2", "cp"), ("gf-x-cp3", "cp"),
        ("gf-x-w1", "worker"), ("gf-x-gpu1", "gpu"), ("gf-x-gpu2", "gpu")]
    assert lab.plan("x", hosts=1, gpu_hosts=0) == [("gf-x-cp1", "cp")]


def test_recipe_hash_changes_with_the_recipe(monkeypatch):
    before = lab.recipe_hash("bookworm")
    assert before != lab.recipe_hash("trixie")
    monkeypatch.setattr(lab, "INCLUDES", lab.INCLUDES + ("curl",))
    assert lab.recipe_hash("bookworm") != before


@pytest.mark.lab
def test_hosts_boot_systemd_on_a_dns_network(t_lab):
    assert [(h["name"], h["role"]) for h in t_lab["hosts"]] == [(CP, "cp"), (GPU, "gpu")]
    assert t_lab["network"] == "gf-t-lab"
    for host in t_lab["hosts"]:
        name = host["name"]
        assert sh("podman", "exec", name, "systemctl", "is-system-running").stdout.strip() in ("running", "degraded")
        assert sh("podman", "exec", name, "cat", "/proc/1/comm").stdout.strip() == "systemd"
        assert sh("podman", "exec", name, "hostname").stdout.strip() == name
        assert sh("podman", "exec", name, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
        labels = json.loads(sh("podman", "inspect", "--format", "{{json .Config.Labels}}", name).stdout)
        assert labels["gpuforge.lab"] == NAME and labels["gpuforge.role"] == host["role"]
    # the GPU host carries a real nvidia-smi capture (an A100 80GB with MIG), read-only
    labels = json.loads(sh("podman", "inspect", "--format", "{{json .Config.Labels}}", GPU).stdout)
    assert labels["gpuforge.gpu_fixture"] == "telegraf__a100-sxm4-v12.xml"
    xml = sh("podman", "exec", GPU, "cat", lab.SIMULATED_SMI_XML).stdout
    assert "<product_name>NVIDIA A100-SXM4-80GB</product_name>" in xml
    assert sh("podman", "exec", GPU, "sh", "-c", f"echo x >> {lab.SIMULATED_SMI_XML}").returncode != 0
    assert sh("podman", "exec", CP, "test", "-e", lab.SIMULATED_SMI_XML).returncode == 1
    resolved = sh("podman", "exec", GPU, "getent", "hosts", CP).stdout.split()
    assert resolved and resolved[0] == t_lab["hosts"][0]["ip"]


@pytest.mark.lab
def test_inventory_has_the_product_groups(t_lab):
    text = Path(t_lab["inventory"]).read_text()
    assert text.startswith("# Written by `gpuforge lab up --name t-lab`")
    ip = {h["name"]: h["ip"] for h in t_lab["hosts"]}
    groups = yaml.safe_load(text)["all"]["children"]["k8s_cluster"]["children"]
    assert groups == {
        "control_plane": {"hosts": {CP: {"ansible_host": CP, "gpuforge_node_ip": ip[CP]}}},
        "workers": {"hosts": {}, "children": {"gpu_workers": {"hosts": {GPU: {"ansible_host": GPU,
                                                                               "gpuforge_node_ip": ip[GPU]}}}}},
    }
    # what Ansible makes of it, with the lab group_vars beside it
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", t_lab["inventory"],
                           "--list"], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    inv = json.loads(proc.stdout)
    assert inv["control_plane"]["hosts"] == [CP] and inv["gpu_workers"]["hosts"] == [GPU]
    assert "gpu_workers" in inv["workers"]["children"]
    assert inv["_meta"]["hostvars"][CP]["ansible_connection"] == "gpuforge.cluster.lab_podman"
    assert inv["_meta"]["hostvars"][GPU]["gpuforge_gpu_simulated"] is True


@pytest.mark.lab
def test_second_up_reuses_the_hosts(t_lab):
    before = Path(t_lab["inventory"]).read_text()
    again = lab.up(name=NAME, hosts=2, gpu_hosts=1, inventory=t_lab["inventory"])
    assert again["created"] == [] and again["removed"] == []
    assert again["reused"] == [CP, GPU]
    assert [h["id"] for h in again["hosts"]] == [h["id"] for h in t_lab["hosts"]]
    assert Path(t_lab["inventory"]).read_text() == before


@pytest.mark.lab
def test_reshape_adds_and_removes_hosts(t_lab, monkeypatch, tmp_path):
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(tmp_path))
    stale = tmp_path / f"s1_{W}"
    stale.write_text("{}")  # facts of an older host of the same name
    (tmp_path / f"s1_{CP}").write_text("{}")
    bigger = lab.up(name=NAME, hosts=3, gpu_hosts=1, inventory=t_lab["inventory"])
    assert bigger["created"] == [W] and bigger["reused"] == [CP, GPU]
    assert not stale.exists() and (tmp_path / f"s1_{CP}").exists()
    groups = yaml.safe_load(Path(t_lab["inventory"]).read_text())["all"]["children"]["k8s_cluster"]["children"]
    assert list(groups["workers"]["hosts"]) == [W]
    smaller = lab.up(name=NAME, hosts=2, gpu_hosts=1, inventory=t_lab["inventory"])
    assert smaller["removed"] == [W] and smaller["created"] == []
    assert [h["id"] for h in smaller["hosts"]] == [h["id"] for h in t_lab["hosts"]]
    assert sh("podman", "container", "exists", W).returncode == 1


@pytest.mark.lab
def test_status(t_lab):
    ip = {h["name"]: h["ip"] for h in t_lab["hosts"]}
    assert lab.status(NAME) == [
        {"name": CP, "lab": NAME, "role": "cp", "state": "running", "ip": ip[CP]},
        {"name": GPU, "lab": NAME, "role": "gpu", "state": "running", "ip": ip[GPU]},
    ]
    proc = subprocess.run([sys.executable, "-m", "gpuforge.cli", "lab", "status", "--json"],
                          capture_output=True, text=True, check=True)
    assert {r["name"] for r in json.loads(proc.stdout) if r["lab"] == NAME} == {CP, GPU}


@pytest.mark.lab
def test_down_removes_everything(t_lab, monkeypatch, tmp_path):
    """Runs last in this module: the factory's own teardown then has nothing left to do."""
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(tmp_path))
    for f in (f"s1_{CP}", GPU, "s1_gf-other-host"):
        (tmp_path / f).write_text("{}")
    res = lab.down(name=NAME, inventory=t_lab["inventory"])
    assert sorted(res["removed"]) == [CP, GPU]
    assert res["networks"] == ["gf-t-lab"] and res["inventory"] == t_lab["inventory"]
    assert sh("podman", "ps", "-a", "-q", "--filter", f"label=gpuforge.lab={NAME}").stdout.strip() == ""
    assert sh("podman", "network", "exists", "gf-t-lab").returncode == 1
    assert not Path(t_lab["inventory"]).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1_gf-other-host"]
    assert lab.status(NAME) == []
