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

from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec, cluster


def cluster_model(groups, hostvars, playbook_dir=None):
    if not isinstance(groups, Mapping) or not isinstance(hostvars, Mapping):
        raise AnsibleFilterError("cluster_model: use it as groups | gpuforge.cluster.cluster_model(hostvars)")
    try:
        model, problems = cluster.build(groups, hostvars, playbook_dir=playbook_dir)
    except argspec.SpecError as exc:
        raise AnsibleFilterError("cluster_model: %s" % exc) from exc
    return {"model": model, "errors": cluster.model_errors(model, problems)}


class FilterModule(object):
    """gpuforge.cluster cluster model."""

    def filters(self):
        return {"cluster_model": cluster_model}
