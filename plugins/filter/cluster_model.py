# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""``groups | cluster_model(hostvars, playbook_dir=None)``: the cluster model of an inventory
(plugins/module_utils/cluster.py), as ``{model: {...}, errors: ["host: message", ...]}``.

gpuforge.cluster.cluster_model sets ``model`` as the fact ``gpuforge_cluster`` on every host; preflight
reports ``errors`` with every other problem of the inventory."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec, cluster, variable_rules


def cluster_model(groups, hostvars, playbook_dir=None):
    if not isinstance(groups, Mapping) or not isinstance(hostvars, Mapping):
        raise AnsibleFilterError("cluster_model: use it as groups | gpuforge.cluster.cluster_model(hostvars)")
    try:
        specs = argspec.load_argument_specs()
        model, problems = cluster.build(groups, hostvars, specs, playbook_dir=playbook_dir)
    except argspec.SpecError as exc:
        raise AnsibleFilterError("cluster_model: %s" % exc) from exc
    errors = cluster.model_errors(model, problems)
    # The rules of the cluster-wide variables, on each host (preflight reports them with everything else).
    values = cluster.Values(hostvars, specs)
    options = cluster.options(specs)
    for host in model["groups"]["cluster"] or list(model["nodes"]):
        merged = {}
        for name in options:
            usable, value, _ = values.value(host, name)
            if usable:
                merged[name] = value
            else:
                errors.append("%s: %s cannot be used (%s)" % (host, name, values.error(host, name) or "it is not a valid %s"
                                                                % argspec.type_name(options[name])))
        merged["cni_plugin"] = values.value(host, "cni_plugin")[1] or "calico"
        for _variable, message in variable_rules.role_variable_errors(cluster.MODEL_ROLE, merged):
            errors.append("%s: %s" % (host, message))
    return {"model": model, "errors": sorted(set(errors), key=errors.index)}


class FilterModule(object):
    """gpuforge.cluster cluster model."""

    def filters(self):
        return {"cluster_model": cluster_model}
