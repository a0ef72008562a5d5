# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""``values | role_variable_errors(role)``: the messages of a role's variable rules and constraints
(plugins/module_utils/variable_rules.py), the same ones the preflight inventory stage runs.

``values`` maps variable names to values, as a role's validate task collects them (its own and the
cluster-wide gpuforge_* ones); the argument spec's default applies to a variable it lacks."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec, cluster, variable_rules


def role_variable_errors_filter(values, role):
    if not isinstance(values, Mapping):
        raise AnsibleFilterError("role_variable_errors: values must be a dict of the role's variables")
    specs = argspec.load_argument_specs()
    if role not in specs:
        raise AnsibleFilterError("role_variable_errors: %r is not a role of the collection (known: %s)"
                                 % (role, ", ".join(sorted(specs))))
    merged = {}
    for name, spec in list(specs.get(cluster.MODEL_ROLE, {}).items()) + list(specs[role].items()):
        merged[name] = (spec or {}).get("default")
    merged.update({str(k): argspec.plain(v) for k, v in values.items()})
    return [message for _variable, message in variable_rules.role_variable_errors(role, merged)]


class FilterModule(object):
    """gpuforge.cluster role variable rules."""

    def filters(self):
        return {"role_variable_errors": role_variable_errors_filter}
