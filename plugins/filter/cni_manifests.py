# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The cluster's CNI from its upstream files, set to the cluster's pod network (gpuforge.cluster.cni).

``cni_pod_network(value, kubeadm_config)`` checks the cluster model's pod subnet
(``gpuforge_pod_subnet``) against the one ``kubeadm init`` recorded in the ClusterConfiguration of
ConfigMap kube-system/kubeadm-config (``kubeadm_config``: that ConfigMap as kubernetes.core.k8s_info
returns it, or its ``resources`` list) and returns ``{"subnet": "10.32.0.0/16", "cluster": "...",
"errors": [...]}``: the subnet to use (an IPv4 network, normalized) and what is wrong, each message
naming the variable.

``cni_calico_manifest(documents, pod_subnet, encapsulation, mtu)`` sets Calico's manifest
(manifests/calico.yaml, the documents as ``from_yaml_all`` reads them) to the pod subnet:
``CALICO_IPV4POOL_CIDR`` (commented out upstream) and the encapsulation
(``CALICO_IPV4POOL_IPIP``/``CALICO_IPV4POOL_VXLAN``, and ``CALICO_IPV6POOL_VXLAN`` like
the IPv4 one) in the calico-node container of the
calico-node DaemonSet, ``calico_backend`` and ``veth_mtu`` in ConfigMap calico-config, and with
VXLAN the BIRD checks left out of the probes (as upstream's calico-vxlan.yaml does).

``cni_flannel_manifest(documents, pod_subnet, backend)`` sets ``Network`` and ``Backend.Type``
in net-conf.json of ConfigMap kube-flannel-cfg (Documentation/kube-flannel.yml).

Both label every document ``app.kubernetes.io/managed-by: gpuforge`` unless it has a
managed-by label of its own, and never change their input.

``cni_image_registry(documents, registry)`` moves every container image of the workloads
(Pod, DaemonSet, Deployment, StatefulSet, ReplicaSet, Job, CronJob) to a mirror: the registry
host part of the reference is replaced by ``registry`` (``host[:port][/path]``), the
repository path, tag and digest are kept (an image named without a host is the upstream
registry's, ``library/`` for a one-part name). ``registry`` "" returns the documents as they are.

``cni_helm_image_values(values, registry)`` does the same for a Helm chart's values (the
chart's values.yaml): it returns the values to pass to Helm that move each image
(a map with ``repository`` and ``tag`` or ``digest``) to the mirror, ``{}`` when
``registry`` is "".
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Mapping, Sequence

import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.gpuforge.cluster.plugins.module_utils import names
from ansible_collections.gpuforge.cluster.plugins.module_utils.variable_rules import pod_network_problem

MANAGED_BY = "app.kubernetes.io/managed-by"
KUBEADM_CONFIG = "ConfigMap kube-system/kubeadm-config"
CALICO_ENCAPSULATIONS = {
    # encapsulation: (CALICO_IPV4POOL_IPIP, CALICO_IPV4POOL_VXLAN, calico_backend)
    "IPIP": ("Always", "Never", "bird"),
    "IPIPCrossSubnet": ("CrossSubnet", "Never", "bird"),
    "VXLAN": ("Never", "Always", "vxlan"),
    "VXLANCrossSubnet": ("Never", "CrossSubnet", "vxlan"),
    "None": ("Never", "Never", "bird"),
}
FLANNEL_BACKENDS = ("vxlan", "host-gw", "wireguard")
# Where a workload kind keeps its pod spec.
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "DaemonSet": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
REGISTRY_RE = names.REGISTRY_RE
IMAGE_RE = names.IMAGE_RE


def _error(name, message):
    raise AnsibleFilterError("%s: %s" % (name, message))


def _plain(value):
    """A plain copy (dict, list, str, ...) of what Ansible hands over."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return copy.deepcopy(value)


def _documents(name, documents):
    if isinstance(documents, (str, bytes, Mapping)) or not isinstance(documents, Sequence):
        _error(name, "the documents must be a list (from_yaml_all | list), got %s" % type(documents).__name__)
    out = []
    for number, doc in enumerate(documents):
        if doc is None:  # an empty document (a trailing ---)
            continue
        if not isinstance(doc, Mapping) or not doc.get("kind") or not isinstance(doc.get("metadata"), Mapping):
            _error(name, "document %d is not a Kubernetes object (kind and metadata), got %r" % (number, str(doc)[:80]))
        out.append(_plain(doc))
    if not out:
        _error(name, "the manifest has no document")
    return out


def _find(name, documents, kind, object_name, hint):
    for doc in documents:
        if doc["kind"] == kind and doc["metadata"].get("name") == object_name:
            return doc
    _error(name, "the manifest has no %s %s (%s)" % (kind, object_name, hint))


def _label(documents):
    for doc in documents:
        labels = doc["metadata"].get("labels") or {}
        labels.setdefault(MANAGED_BY, "gpuforge")
        doc["metadata"]["labels"] = labels
    return documents


def _network(value):
    """ipaddress.IPv4Network of a CIDR string, or a message saying why not (variable_rules.pod_network_problem,
    the rule preflight applies to gpuforge_pod_subnet before any host is contacted)."""
    why = pod_network_problem(value)
    if why:
        return None, why
    return ipaddress.ip_network(str(value).strip(), strict=True), ""


def _subnet_arg(name, pod_subnet):
    net, why = _network(pod_subnet)
    if net is None:
        _error(name, "pod_subnet %s" % why)
    return str(net)


def _cluster_configuration(kubeadm_config):
    """(ClusterConfiguration dict or None, error message) from the kubeadm-config ConfigMap."""
    if kubeadm_config is None or kubeadm_config == "":
        return None, ""
    if isinstance(kubeadm_config, Mapping) and "resources" in kubeadm_config:  # the whole k8s_info result
        kubeadm_config = kubeadm_config["resources"]
    if isinstance(kubeadm_config, Sequence) and not isinstance(kubeadm_config, (str, bytes)):
        if not kubeadm_config:
            return None, ""
        kubeadm_config = kubeadm_config[0]
    if not isinstance(kubeadm_config, Mapping):
        raise AnsibleFilterError("cni_pod_network: kubeadm_config must be the ConfigMap kube-system/kubeadm-config "
                                 "(kubernetes.core.k8s_info), got %s" % type(kubeadm_config).__name__)
    text = (kubeadm_config.get("data") or {}).get("ClusterConfiguration")
    if not text:
        return None, ""
    try:
        config = yaml.safe_load(str(text))
    except yaml.YAMLError as exc:
        return None, "the ClusterConfiguration in %s is not YAML (%s)" % (KUBEADM_CONFIG, str(exc).splitlines()[0])
    if not isinstance(config, Mapping):
        return None, "the ClusterConfiguration in %s is not a mapping" % KUBEADM_CONFIG
    return config, ""


def cni_pod_network(value, kubeadm_config=None):
    """{subnet, cluster, service, errors}: the pod subnet of the cluster model (gpuforge_pod_subnet) checked
    against the one kubeadm init recorded; the CNI goes on a cluster kubeadm made, so that record must exist."""
    errors = []
    variable = "gpuforge_pod_subnet"
    wanted = "" if value is None else str(value).strip()
    config, problem = _cluster_configuration(kubeadm_config)
    if problem:
        errors.append(problem)
    networking = (config or {}).get("networking") or {}
    cluster = str(networking.get("podSubnet") or "").strip()
    service = str(networking.get("serviceSubnet") or "").strip()

    subnet, why = _network(wanted)
    if subnet is None:
        errors.append("%s: %s" % (variable, why))
    if cluster:
        where = "the cluster's pod subnet (networking.podSubnet in %s)" % KUBEADM_CONFIG
        if "," in cluster:
            errors.append("%s is %r, dual-stack: the role sets up one IPv4 pod network" % (where, cluster))
        else:
            try:
                cluster_net = ipaddress.ip_network(cluster, strict=False)
            except ValueError as exc:
                errors.append("%s %r is not a network (%s)" % (where, cluster, exc))
            else:
                if subnet is not None and subnet != cluster_net:
                    errors.append("%s is %s but %s is %s: kubeadm init fixed it when it created the cluster; set %s "
                                  "to %s" % (variable, wanted, where, cluster, variable, cluster))
    elif not problem:
        errors.append("the cluster records no pod subnet (no networking.podSubnet in the ClusterConfiguration of %s, "
                      "which kubeadm init uploads): the CNI goes on a cluster kubeadm made, on the pod subnet it "
                      "recorded (%s %s)" % (KUBEADM_CONFIG, variable, wanted or "empty"))

    if subnet is not None and service:
        try:
            service_net = ipaddress.ip_network(service.split(",")[0], strict=False)
        except ValueError:
            service_net = None
        if service_net is not None and service_net.version == 4 and subnet.overlaps(service_net):
            errors.append("the pod subnet %s overlaps the service subnet %s (networking.serviceSubnet in %s)"
                          % (subnet, service, KUBEADM_CONFIG))
    return {"subnet": str(subnet) if subnet is not None and not errors else "", "cluster": cluster,
            "service": service, "errors": errors}


def workload_images(documents):
    """(kind/name/container, image) of every container of the workloads of a manifest, sorted."""
    out = []
    for doc in documents:
        if not isinstance(doc, Mapping) or doc.get("kind") not in POD_SPEC_PATHS:
            continue
        spec = doc
        for key in POD_SPEC_PATHS[doc["kind"]]:
            spec = spec.get(key) or {}
        for field in CONTAINER_LISTS:
            out += [("%s/%s/%s" % (doc["kind"], doc["metadata"]["name"], c["name"]), c["image"])
                    for c in spec.get(field) or []]
    return sorted(out)


def _set_env(env, name, value):
    for entry in env:
        if entry.get("name") == name:
            entry.pop("valueFrom", None)
            entry["value"] = value
            return
    env.append({"name": name, "value": value})


def cni_calico_manifest(documents, pod_subnet, encapsulation="IPIP", mtu=0):
    """Calico's manifests/calico.yaml documents set to the pod subnet, encapsulation and MTU."""
    name = "cni_calico_manifest"
    subnet = _subnet_arg(name, pod_subnet)
    if encapsulation not in CALICO_ENCAPSULATIONS:
        _error(name, "encapsulation %r is not one of %s" % (encapsulation, ", ".join(CALICO_ENCAPSULATIONS)))
    try:
        mtu = int(mtu)
    except (TypeError, ValueError):
        _error(name, "mtu %r is not a number" % (mtu,))
    if mtu != 0 and not 576 <= mtu <= 9000:
        _error(name, "mtu %d is not 0 (auto-detect) nor between 576 and 9000" % mtu)
    docs = _documents(name, documents)
    hint = "is it Calico's manifests/calico.yaml?"
    daemonset = _find(name, docs, "DaemonSet", "calico-node", hint)
    config = _find(name, docs, "ConfigMap", "calico-config", hint)
    pod_spec = ((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}
    container = next((c for c in pod_spec.get("containers") or [] if c.get("name") == "calico-node"), None)
    if container is None:
        _error(name, "the DaemonSet calico-node has no container calico-node (%s)" % hint)
    ipip, vxlan, backend = CALICO_ENCAPSULATIONS[encapsulation]
    env = container.setdefault("env", [])
    _set_env(env, "CALICO_IPV4POOL_CIDR", subnet)
    _set_env(env, "CALICO_IPV4POOL_IPIP", ipip)
    _set_env(env, "CALICO_IPV4POOL_VXLAN", vxlan)
    if any(e.get("name") == "CALICO_IPV6POOL_VXLAN" for e in env):  # as upstream's calico-vxlan.yaml
        _set_env(env, "CALICO_IPV6POOL_VXLAN", vxlan)
    config.setdefault("data", {})
    config["data"]["calico_backend"] = backend
    config["data"]["veth_mtu"] = str(mtu)
    if backend != "bird":
        # no BGP: BIRD does not run, its checks would keep the pod unready (upstream calico-vxlan.yaml)
        for probe in ("livenessProbe", "readinessProbe"):
            command = ((container.get(probe) or {}).get("exec") or {}).get("command")
            if isinstance(command, list):
                container[probe]["exec"]["command"] = [c for c in command if c not in ("-bird-live", "-bird-ready")]
    return _label(docs)


def cni_flannel_manifest(documents, pod_subnet, backend="vxlan"):
    """Flannel's kube-flannel.yml documents set to the pod subnet and backend."""
    name = "cni_flannel_manifest"
    subnet = _subnet_arg(name, pod_subnet)
    if backend not in FLANNEL_BACKENDS:
        _error(name, "backend %r is not one of %s" % (backend, ", ".join(FLANNEL_BACKENDS)))
    docs = _documents(name, documents)
    hint = "is it Flannel's Documentation/kube-flannel.yml?"
    _find(name, docs, "DaemonSet", "kube-flannel-ds", hint)
    config = _find(name, docs, "ConfigMap", "kube-flannel-cfg", hint)
    text = (config.get("data") or {}).get("net-conf.json")
    if not text:
        _error(name, "the ConfigMap kube-flannel-cfg has no net-conf.json (%s)" % hint)
    try:
        net_conf = json.loads(text)
    except ValueError as exc:
        _error(name, "net-conf.json of the ConfigMap kube-flannel-cfg is not JSON (%s)" % exc)
    if not isinstance(net_conf, dict):
        _error(name, "net-conf.json of the ConfigMap kube-flannel-cfg is not a JSON object")
    net_conf["Network"] = subnet
    current = net_conf.get("Backend") if isinstance(net_conf.get("Backend"), dict) else {}
    net_conf["Backend"] = current if current.get("Type") == backend else {"Type": backend}
    config["data"]["net-conf.json"] = json.dumps(net_conf, indent=2) + "\n"
    return _label(docs)


def _registry_arg(name, registry):
    text = "" if registry is None else str(registry).strip()
    if text and not REGISTRY_RE.match(text):
        _error(name, "registry %r is not a registry host[:port][/path] (no scheme, no trailing slash, "
                     "lowercase path)" % text)
    return text


def _mirror(name, image, registry, where):
    if not isinstance(image, str) or not IMAGE_RE.match(image):
        _error(name, "%s: %r is not an image reference" % (where, image))
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        path = rest
    elif sep:
        path = image
    else:
        path = "library/" + image
    return "%s/%s" % (registry, path)


def cni_image_registry(documents, registry=""):
    """The documents with every container image of the workloads on the mirror registry."""
    name = "cni_image_registry"
    registry = _registry_arg(name, registry)
    docs = _documents(name, documents)
    if not registry:
        return docs
    for doc in docs:
        path = POD_SPEC_PATHS.get(doc["kind"])
        if path is None:
            continue
        spec = doc
        for key in path:
            spec = spec.get(key) if isinstance(spec, Mapping) else None
        if not isinstance(spec, Mapping):
            continue
        for field in CONTAINER_LISTS:
            for container in spec.get(field) or []:
                if isinstance(container, Mapping) and "image" in container:
                    where = "%s %s, %s %s" % (doc["kind"], doc["metadata"].get("name"), field, container.get("name"))
                    container["image"] = _mirror(name, container["image"], registry, where)
    return docs


def cni_helm_image_values(values, registry=""):
    """Helm values that move each image of a chart's values (repository + tag/digest) to the mirror."""
    name = "cni_helm_image_values"
    registry = _registry_arg(name, registry)
    if not isinstance(values, Mapping):
        _error(name, "values must be the chart's values (a dict), got %s" % type(values).__name__)
    if not registry:
        return {}

    def walk(node, where):
        out = {}
        for key, value in node.items():
            if not isinstance(value, Mapping):
                continue
            here = "%s.%s" % (where, key) if where else str(key)
            repository = value.get("repository")
            if isinstance(repository, str) and repository and ("tag" in value or "digest" in value):
                out[key] = {"repository": _mirror(name, repository, registry, here + ".repository")}
            else:
                inner = walk(value, here)
                if inner:
                    out[key] = inner
        return out

    return walk(_plain(values), "")


class FilterModule(object):
    """gpuforge.cluster CNI manifest filters."""

    def filters(self):
        return {
            "cni_pod_network": cni_pod_network,
            "cni_calico_manifest": cni_calico_manifest,
            "cni_flannel_manifest": cni_flannel_manifest,
            "cni_image_registry": cni_image_registry,
            "cni_helm_image_values": cni_helm_image_values,
        }
