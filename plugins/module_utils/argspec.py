# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The roles' argument specs (``roles/<role>/meta/argument_specs.yml``) as the single source of truth of
every variable: loading them, checking a value against an option like Ansible's own validation does,
showing values in messages, and suggesting the name a misspelt variable meant.

Controller side only (PyYAML and ansible-core's validators).
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from ansible.module_utils.common.parameters import DEFAULT_TYPE_VALIDATORS

from ansible_collections.gpuforge.cluster.plugins.module_utils import names

# The collection's roles folder (this file is <collection>/plugins/module_utils/argspec.py).
ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"


class SpecError(ValueError):
    """An argument spec file that cannot be read."""


_CACHE = {}


def load_argument_specs(roles_dir=None):
    """Options of every role under ``roles_dir`` (default: the collection's), from
    ``<role>/meta/argument_specs.yml``: ``{role: {option: spec}}``, the options of all entry points of
    a role merged (an option defined by two entry points keeps the one of ``main``). Read once per
    process and folder (a deep copy is returned)."""
    root = Path(str(roles_dir)) if roles_dir else ROLES_DIR
    key = (str(root), tuple((str(p), p.stat().st_mtime) for p in sorted(root.glob("*/meta/argument_specs.yml"))))
    if key not in _CACHE:
        _CACHE[key] = _load(root)
    return copy.deepcopy(_CACHE[key])


def _load(root):
    if not root.is_dir():
        raise SpecError("%s is not a directory" % root)
    specs = {}
    for path in sorted(root.glob("*/meta/argument_specs.yml")):
        role = path.parent.parent.name
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SpecError("cannot read %s: %s" % (path, exc)) from exc
        entry_points = data.get("argument_specs") if isinstance(data, Mapping) else None
        if not isinstance(entry_points, Mapping):
            raise SpecError("%s has no argument_specs mapping" % path)
        options = {}
        for name in sorted(entry_points, key=lambda n: (n != "main", n)):
            entry = entry_points[name] or {}
            for option, spec in (entry.get("options") or {}).items():
                options.setdefault(option, spec or {})
        specs[role] = options
    return specs


def defaults(options):
    """{option: default} of a role's options (None where it has none)."""
    return {name: (spec or {}).get("default") for name, spec in options.items()}


def type_name(spec):
    return (spec or {}).get("type") or "str"


def convert(value, wanted):
    """Coerce ``value`` like Ansible's argument spec validation does (the same functions)."""
    checker = DEFAULT_TYPE_VALIDATORS.get(wanted)
    if checker is None:
        raise SpecError("unsupported argument spec type %r" % (wanted,))
    return checker(value)


def plain(value):
    """Deep copy into plain Python types (lazy Ansible containers, tagged strings)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return str(value)


def show(value):
    """A value as it would be written in YAML, for messages: 'text', 0, true, null, []."""
    if isinstance(value, str):
        return "'%s'" % value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(plain(value))


def float_hint(value, written=None):
    """A YAML number where text was meant: 1.30 reads as the float 1.3; the hint says to quote it, as written
    when the inventory's file says how (``written``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if written and str(written) != str(value):
            return " (YAML read %s as the number %s: quote it, \"%s\", so that it stays text)" % (written, value, written)
        return " (YAML read it as the number %s: quote it, \"%s\", so that it stays text)" % (value, written or value)
    return ""


def suggest(name, candidates, cutoff=0.8):
    """The candidate a misspelt ``name`` most likely meant, or None when none is close.

    Close means a similarity ratio of ``cutoff`` over the whole name and, after the words both names start
    with, a close rest (``common_dissable_swap`` -> ``common_disable_swap``): never a name that merely shares a
    long prefix or suffix (``kubernetes_control_plane_audit_policy`` gets no hint)."""
    candidates = sorted(set(str(c) for c in candidates))
    if not candidates:
        return None
    scored = []
    for candidate in candidates:
        ratio = difflib.SequenceMatcher(None, name, candidate).ratio()
        if ratio >= cutoff and _rest_ratio(name, candidate) >= min(cutoff, REST_CUTOFF):
            scored.append((ratio, candidate))
    if not scored:
        return None
    scored.sort(key=lambda item: (-item[0], item[1]))
    return scored[0][1]


# What follows the words two names share must be this similar too (cni_calico_mut is cni_calico_mtu at 0.67;
# kubernetes_node_objects_annotations is not kubernetes_node_objects_taints at 0.47).
REST_CUTOFF = 0.6


def _rest_ratio(name, candidate):
    """Similarity of what follows the words two names share: kubernetes_control_plane_audit_policy is not
    kubernetes_control_plane_api_sans merely because both start with kubernetes_control_plane_."""
    shared = os.path.commonprefix([name, candidate])
    cut = shared.rfind("_") + 1
    if not cut:
        return 1.0
    return difflib.SequenceMatcher(None, name[cut:], candidate[cut:]).ratio()


def validate_value(name, value, spec, constraint=None, written=None):
    """Problems of one value against one argument spec option.

    Returns a list of ``(check, text)`` tuples; ``text`` continues a sentence that
    starts with the variable name, e.g. ``"'maybe' is not a valid bool"``. ``written``: the value as the
    inventory's file writes it, when YAML read it as a number.
    """
    spec = spec or {}
    problems = []
    if value is None and not spec.get("required") and spec.get("default") is None:
        return problems
    wanted = type_name(spec)
    if wanted in ("str", "path") and not isinstance(value, bool) and (
            isinstance(value, float) or (isinstance(value, int) and (
                name.endswith("_version") or names.RELEASE_RE.match(str(spec.get("default") or ""))))):
        # a version written as a YAML number: 1.30 is 1.3 by the time anyone reads it
        return [("variable_type", "%s is a number, not text%s" % (show(value), float_hint(value, written)))]
    try:
        converted = convert(value, wanted)
    except (TypeError, ValueError):
        return [("variable_type", "%s is not a valid %s" % (show(value), wanted))]

    elements = spec.get("elements")
    if elements and isinstance(converted, list):
        converted_elements = []
        for index, item in enumerate(converted):
            try:
                item = convert(item, elements)
            except (TypeError, ValueError):
                problems.append(("variable_type", "[%d] %s is not a valid %s" % (index, show(item), elements)))
                continue
            if elements == "dict" and spec.get("options"):
                problems.extend(_validate_suboptions("[%d]" % index, item, spec["options"]))
            converted_elements.append(item)
        converted = converted_elements
    elif wanted == "dict" and spec.get("options") and isinstance(converted, Mapping):
        problems.extend(_validate_suboptions("", converted, spec["options"]))

    choices = spec.get("choices")
    if choices and not problems:
        values = converted if isinstance(converted, list) else [converted]
        bad = [v for v in values if v not in choices]
        if bad:
            hint = suggest(str(bad[0]), [str(c) for c in choices], cutoff=0.6) if not isinstance(converted, list) else None
            problems.append((
                "variable_choice",
                "%s is not one of the allowed values (%s)%s" % (
                    ", ".join(show(v) for v in bad) if isinstance(converted, list) else show(value),
                    ", ".join(str(c) for c in choices), "; did you mean %s?" % hint if hint else ""),
            ))

    if constraint and not problems:
        problems.extend(check_constraint(converted, constraint, value))
    return problems


def _validate_suboptions(path, value, options):
    """Problems of a dict against sub-options; texts start with ``path`` (``[0]``, ``.key``)."""
    problems = []
    if not isinstance(value, Mapping):
        return [("variable_type", _at(path, "%s is not a valid dict" % show(value)))]
    for key in value:
        if key not in options:
            hint = suggest(str(key), options, cutoff=0.6)
            problems.append((
                "variable_unknown",
                _at(path, "has an unknown key %s%s" % (key, "; did you mean %s?" % hint if hint else "")),
            ))
    for key, subspec in options.items():
        if key not in value:
            if (subspec or {}).get("required"):
                problems.append(("variable_required", _at(path, "is missing the required key %s" % key)))
            continue
        for check, text in validate_value(key, value[key], subspec):
            problems.append((check, "%s.%s%s" % (path, key, join(text))))
    return problems


def _at(path, rest):
    return "%s %s" % (path, rest) if path else rest


def join(text):
    """Continue a variable name with a problem text: ``x`` + ``[0].y ...`` or ``x`` + `` 'v' is ...``."""
    return text if text[:1] in ("[", ".") else " " + text


def check_constraint(value, constraint, original=None):
    """Problems of a converted value against ``{min, max, max_length, format}``."""
    problems = []
    minimum = constraint.get("min")
    maximum = constraint.get("max")
    shown = show(value if original is None else original)
    if minimum is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value < minimum:
        problems.append(("variable_range", "%s is below the minimum %s" % (shown, minimum)))
    if maximum is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value > maximum:
        problems.append(("variable_range", "%s is above the maximum %s" % (shown, maximum)))
    longest = constraint.get("max_length")
    if longest is not None and isinstance(value, str) and len(value) > longest:
        problems.append(("variable_range", "is %d characters long, more than the %d allowed" % (len(value), longest)))
    fmt = constraint.get("format")
    if fmt == "ip" and value not in (None, ""):
        try:
            ipaddress.ip_address(str(value))
        except ValueError:
            problems.append(("variable_format", "%s is not an IP address" % show(value)))
    elif fmt == "version" and value not in (None, ""):
        if version_tuple(value) is None:
            problems.append(("variable_format", "%s is not a version such as '3.8'%s" % (show(value), float_hint(original))))
    elif fmt == "absolute_path" and not str(value).startswith("/"):
        problems.append(("variable_format", "%s is not an absolute path" % show(value)))
    return problems


def version_tuple(value):
    match = re.match(r"^\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$", str(value))
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def expected(spec, constraint=None):
    """What an option takes, for the report's ``expected`` field."""
    text = type_name(spec)
    if spec.get("elements"):
        text = "list of %s" % spec["elements"]
    if spec.get("choices"):
        text += " in [%s]" % ", ".join(str(c) for c in spec["choices"])
    for key in ("min", "max", "max_length", "format"):
        if constraint and constraint.get(key) is not None:
            text += ", %s %s" % (key, constraint[key])
    return text


def secret(name, spec):
    """Whether a variable's value must never be shown (no_log in its spec, or a secret's name)."""
    return bool((spec or {}).get("no_log")) or bool(re.search(r"(password|passwd|secret|token|private_key)", name))
