# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""``role_variable_errors(values, role)``: the messages of the rules between a role's variables
(module_utils/variable_rules.py), the same rules the preflight inventory check runs."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuforge.cluster.plugins.module_utils.variable_rules import RULES, role_variable_errors


def role_variable_errors_filter(values, role):
    if not isinstance(values, Mapping):
        raise AnsibleFilterError("role_variable_errors: values must be a dict of the role's variables")
    if role not in RULES:
        raise AnsibleFilterError("role_variable_errors: no rules for role %r (known: %s)" % (role, ", ".join(sorted(RULES))))
    return [message for _variable, message in role_variable_errors(role, values)]


class FilterModule(object):
    """gpuforge.cluster role variable rules."""

    def filters(self):
        return {"role_variable_errors": role_variable_errors_filter}
