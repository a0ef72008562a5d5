# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The inventory as the controller sees it, read without ever raising: a host's variables (a value that
cannot be templated is an error text, not an exception), and the inventory's own files (hosts.yml,
group_vars/, host_vars/) read again for what Ansible lets pass: duplicate keys, and where a value was set.

Controller side only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml
from jinja2 import Undefined

try:
    from jinja2 import Undefined
except ImportError:  # pragma: no cover - Ansible's controller always has Jinja
    class Undefined(object):
        """Stands in for jinja2.Undefined: nothing is an instance of it."""

# Variables every host has that are not the inventory's (magic variables, connection internals).
MAGIC = frozenset((
    "ansible_check_mode", "ansible_collection_name", "ansible_config_file", "ansible_dependent_role_names",
    "ansible_diff_mode", "ansible_facts", "ansible_forks", "ansible_inventory_sources", "ansible_limit",
    "ansible_local", "ansible_play_batch", "ansible_play_hosts", "ansible_play_hosts_all", "ansible_play_name",
    "ansible_play_role_names", "ansible_playbook_python", "ansible_role_name", "ansible_role_names",
    "ansible_run_tags", "ansible_search_path", "ansible_skip_tags", "ansible_verbosity", "ansible_version",
    "group_names", "groups", "hostvars", "inventory_dir", "inventory_file", "inventory_hostname",
    "inventory_hostname_short", "omit", "play_hosts", "playbook_dir", "role_name", "role_names", "role_path",
    "vars", "environment",
))


def host_vars(hostvars, host):
    try:
        return hostvars[host]
    except KeyError:
        return {}


def get(variables, name, default=None):
    """A (templated) variable; returns (value, error text or None)."""
    try:
        if name not in variables:
            return default, None
        value = variables[name]
        # ansible-core 2.19 returns a marker for what cannot be templated (an undefined variable) instead of
        # raising; it would fail the whole task later, where nothing says which host and variable it was
        undefined = undefined_message(value)
        if undefined is not None:
            return default, undefined
        return value, None
    except Exception as exc:  # noqa: BLE001 - templating errors of any kind are reported, not raised
        text = str(exc).strip().splitlines()
        return default, (text[0] if text else type(exc).__name__)


def undefined_message(value, depth=0):
    """The message of the first undefined (jinja2.Undefined, Ansible's markers) in a value, its containers
    searched; None when there is none."""
    if isinstance(value, Undefined):
        try:
            text = str(value._undefined_message).strip().splitlines()
        except Exception:  # noqa: BLE001 - a marker that cannot say why is still undefined
            text = []
        return text[0] if text else "it is undefined"
    if depth > 32 or isinstance(value, (str, bytes)):
        return None
    if isinstance(value, Mapping):
        items = list(value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        return None
    for item in items:
        found = undefined_message(item, depth + 1)
        if found is not None:
            return found
    return None


def fact_names(variables):
    """Names of the host's gathered facts (and their ansible_ injected forms): not inventory variables."""
    try:
        facts = variables.get("ansible_facts") or {}
        names = set(facts.keys()) if isinstance(facts, Mapping) else set()
    except Exception:  # noqa: BLE001 - a broken fact cache entry only means no fact names to skip
        return set()
    return names | {"ansible_" + name for name in names}


def variable_names(variables):
    """The inventory's (and the run's) variable names of a host: no facts, no magic variables."""
    facts = fact_names(variables)
    return sorted(str(n) for n in variables.keys() if str(n) not in facts and str(n) not in MAGIC)


# ---------------------------------------------------------------------------------------------
# The inventory's files


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that records duplicate keys instead of keeping the last one silently."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, value_node in node.value:
        if isinstance(value_node, yaml.ScalarNode) and isinstance(key_node, yaml.ScalarNode) \
                and value_node.tag in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:int"):
            loader.numbers.setdefault(str(key_node.value), value_node.value)
        try:
            key = loader.construct_object(key_node, deep=True)
        except yaml.YAMLError:
            continue
        try:
            hash(key)
        except TypeError:
            continue
        if key in seen:
            loader.duplicates.append((str(key), seen[key] + 1, key_node.start_mark.line + 1))
        else:
            seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# Ansible's YAML tags (!vault, !unsafe) are values; read them as their text.
_Loader.add_constructor("!vault", lambda loader, node: "<vault>")
_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load_yaml(path, numbers=None):
    """(data, [(key, first line, duplicate line)], error or None) of a YAML file. ``numbers``: a dict that
    gets {key: the text as written} of each value YAML reads as a number (1.30 is the float 1.3)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [], str(exc)
    loader = _Loader(text)
    loader.duplicates = []
    loader.numbers = {}
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        return None, loader.duplicates, str(exc).replace("\n", " ")
    finally:
        loader.dispose()
        if numbers is not None:
            for key, text in loader.numbers.items():
                numbers.setdefault(key, text)
    return data, loader.duplicates, None


_VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")


def _vars_files(folder, name):
    """The files of group_vars/<name> or host_vars/<name>: one file, or a folder of them."""
    found = []
    for suffix in _VARS_SUFFIXES:
        path = folder / (name + suffix)
        if path.is_file():
            found.append(path)
        elif suffix == "" and path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml", ".json", "")))
    return found


def inventory_folders(sources, playbook_dir=None):
    """Folders whose group_vars/ and host_vars/ Ansible reads: each source's (its folder, or itself),
    and the playbook's."""
    folders = []
    for source in sources or []:
        path = Path(str(source))
        if "," in str(source) and not path.exists():
            continue  # a host list (-i a,b,)
        folder = path if path.is_dir() else path.parent
        if folder not in folders:
            folders.append(folder)
    if playbook_dir:
        folder = Path(str(playbook_dir))
        if folder not in folders:
            folders.append(folder)
    return folders


class InventoryFiles(object):
    """The inventory's YAML files, read again: ``duplicates`` [(file, key, first line, line)], ``errors``
    [(file, text)], and ``origins(var, host, group_names)``: where a host's value of a variable was set."""

    def __init__(self, sources, groups, playbook_dir=None):
        self.duplicates = []
        self.errors = []
        self.numbers = {}  # variable: its value as written, where YAML read a number
        self._set = {}  # variable: [(kind, owner, file)]
        self.base = None
        folders = inventory_folders(sources, playbook_dir)
        self.base = folders[0] if folders else None
        for source in sources or []:
            path = Path(str(source))
            if path.is_file() and path.suffix in (".yml", ".yaml"):
                self._read_inventory(path)
        for folder in folders:
            for kind in ("group_vars", "host_vars"):
                base = folder / kind
                if not base.is_dir():
                    continue
                owners = sorted(groups) if kind == "group_vars" else sorted(groups.get("all") or [])
                for owner in owners:
                    for path in _vars_files(base, owner):
                        self._read_vars(path, kind[:-5], owner)

    def _shown(self, path):
        try:
            return str(Path(path).relative_to(self.base)) if self.base else str(path)
        except ValueError:
            return str(path)

    def _load(self, path):
        data, duplicates, error = load_yaml(path, self.numbers)
        for key, first, line in duplicates:
            self.duplicates.append((self._shown(path), key, first, line))
        if error:
            self.errors.append((self._shown(path), error))
        return data

    def _read_vars(self, path, kind, owner):
        data = self._load(path)
        if isinstance(data, Mapping):
            for name in data:
                self._set.setdefault(str(name), []).append((kind, owner, self._shown(path)))

    def _read_inventory(self, path):
        data = self._load(path)
        if not isinstance(data, Mapping):
            return

        def walk(name, group):
            if not isinstance(group, Mapping):
                return
            for var in (group.get("vars") or {}) if isinstance(group.get("vars"), Mapping) else {}:
                self._set.setdefault(str(var), []).append(("group", str(name), self._shown(path)))
            hosts = group.get("hosts")
            if isinstance(hosts, Mapping):
                for host, values in hosts.items():
                    if isinstance(values, Mapping):
                        for var in values:
                            self._set.setdefault(str(var), []).append(("host", str(host), self._shown(path)))
            children = group.get("children")
            if isinstance(children, Mapping):
                for child, sub in children.items():
                    walk(child, sub)

        for name, group in data.items():
            walk(name, group)

    def origins(self, variable, host, group_names):
        """Where ``host``'s ``variable`` was set: texts such as 'group_vars/workers.yml' or 'hosts.yml (host
        gpu-01)', the most specific first (host, then groups other than all, then all)."""
        found = []
        for kind, owner, path in self._set.get(variable, []):
            if kind == "host" and owner == host:
                found.append((0, "%s (host %s)" % (path, host) if "host_vars" not in path else path))
            elif kind == "group" and (owner in (group_names or []) or owner == "all"):
                rank = 2 if owner == "all" else 1
                found.append((rank, "%s (group %s)" % (path, owner) if "group_vars" not in path else path))
        return [text for _rank, text in sorted(found)]
