"""Verifier of gpuforge.cluster.cluster_model (molecule.yml): the model every host and localhost were given,
as converge wrote it to models.json in the ephemeral folder (read on the controller)."""

import json
import os
from pathlib import Path

import pytest

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
# Ansible's inventory_dir of the scenario's hosts: the folder of the inventory Molecule writes
INVENTORY_DIR = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
MODELS = json.loads((EPHEMERAL / "models.json").read_text())
HOSTS = ["cp-01", "wk-01", "gpu-01"]


@pytest.fixture(scope="module")
def model():
    return MODELS["cp-01"]


@pytest.mark.parametrize("holder", HOSTS[1:] + ["localhost"])
def test_every_host_and_localhost_hold_the_same_model(model, holder):
    assert MODELS[holder] == model


def test_the_cluster(model):
    assert model["name"] == "molecule-model"
    assert (model["kubernetes_version"], model["kubernetes_minor"]) == ("1.37.2", "1.37")
    # the defaults of roles/cluster_model
    assert (model["pod_subnet"], model["service_subnet"], model["dns_domain"]) == (
        "10.244.0.0/16", "10.96.0.0/12", "cluster.local")
    assert model["cri_socket"] == "unix:///run/containerd/containerd.sock"
    assert (model["allow_http_downloads"], model["lab"]) == (False, False)


def test_the_groups(model):
    # Molecule writes the inventory in an order of its own: the members, not their order, are the scenario's
    assert {group: sorted(hosts) for group, hosts in model["groups"].items()} == {
        "cluster": sorted(HOSTS), "control_plane": ["cp-01"], "workers": ["gpu-01", "wk-01"], "gpu_workers": ["gpu-01"]}
    assert model["groups"]["cluster"][0] == "cp-01"  # the control plane comes first, as cluster_hosts() lists
    assert model["first_control_plane"] == "cp-01"


def test_node_names_and_addresses(model):
    nodes = model["nodes"]
    assert sorted(nodes) == sorted(HOSTS)
    # gpuforge_node_name and gpuforge_node_ip of cp-01; the inventory hostname and no address elsewhere
    assert (nodes["cp-01"]["name"], nodes["cp-01"]["ip"]) == ("k8s-cp-01", "10.20.0.11")
    assert (nodes["wk-01"]["name"], nodes["wk-01"]["ip"]) == ("wk-01", "")
    assert (nodes["gpu-01"]["name"], nodes["gpu-01"]["ip"]) == ("gpu-01", "")
    assert model["node_hosts"] == {"k8s-cp-01": "cp-01", "wk-01": "wk-01", "gpu-01": "gpu-01"}


def test_node_roles(model):
    roles = {host: (n["control_plane"], n["first_control_plane"], n["worker"], n["gpu_worker"])
             for host, n in model["nodes"].items()}
    assert roles == {"cp-01": (True, True, False, False), "wk-01": (False, False, True, False),
                     "gpu-01": (False, False, True, True)}


def test_versions_and_kubeadm_folders(model):
    # kubernetes_node_version overrides gpu-01's release; the others run the cluster's
    assert {h: n["kubernetes_version"] for h, n in model["nodes"].items()} == {
        "cp-01": "1.37.2", "wk-01": "1.37.2", "gpu-01": "1.36.4"}
    assert {n["kubeadm_dir"] for n in model["nodes"].values()} == {"/etc/kubernetes"}


def test_the_api(model):
    api = model["api"]
    assert (api["port"], api["ha_mode"], api["vip"], api["delegate_to"]) == (6443, "none", "", "localhost")
    # no endpoint set, one control plane: its gpuforge_node_ip
    assert api["endpoint"] == {"host": "10.20.0.11", "port": 6443, "address": "10.20.0.11:6443",
                               "source": "the first control plane's address"}


def test_the_admin_kubeconfig_defaults_to_the_inventory_folder(model):
    # gpuforge_kubeconfig empty: <inventory dir>/artifacts/<gpuforge_cluster_name>-admin.conf
    kubeconfig = Path(model["api"]["kubeconfig"])
    assert kubeconfig.name == "molecule-model-admin.conf"
    assert kubeconfig.parent.name == "artifacts"
    assert kubeconfig.parent.parent.resolve() == INVENTORY_DIR.resolve()
