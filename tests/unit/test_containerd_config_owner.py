"""One owner of containerd's config.toml: gpuforge.cluster.containerd renders it, the NVIDIA
container toolkit writes only its drop-in, no role includes another for the containerd 1.x
refresh of the drop-in's copy of the CRI section; the container runtime playbook composes it
(the containerd role's fact, then the toolkit's `containerd` entry point)."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
TOOLKIT = "gpuforge.cluster.nvidia_container_toolkit"
# Modules that write the file named by their dest/path argument.
WRITERS = {"copy", "template", "lineinfile", "blockinfile", "replace", "ini_file", "file"}
INCLUDES = {"include_role", "import_role"}


def module(task):
    for key in task:
        short = key.rsplit(".", 1)[-1]
        if short in WRITERS | INCLUDES | {"include_tasks", "import_tasks", "block"}:
            return short, task[key]
    return None, None


def tasks(role):
    """(file, task) of every task of a role's tasks/ folder, blocks walked."""
    def walk(items, path):
        for task in items or []:
            yield path, task
            for section in ("block", "rescue", "always"):
                yield from walk(task.get(section), path)
    for path in sorted((ROLES / role / "tasks").glob("*.yml")):
        yield from walk(yaml.safe_load(path.read_text()), path)


def written_paths(role):
    for path, task in tasks(role):
        name, args = module(task)
        if name in WRITERS and name != "file" and isinstance(args, dict):
            yield path, str(args.get("dest") or args.get("path") or "")


def all_roles():
    return sorted(p.name for p in ROLES.iterdir() if (p / "tasks").is_dir())


@pytest.mark.parametrize("role", all_roles())
def test_only_the_containerd_role_writes_config_toml(role):
    for path, dest in written_paths(role):
        touches = "config.toml" in dest or "containerd_config" in dest
        assert not touches or (role == "containerd" and "containerd_config_path" in dest), f"{path}: {dest}"


def test_the_toolkit_writes_only_its_dropin():
    dests = {dest for _, dest in written_paths("nvidia_container_toolkit")}
    assert "{{ __nvidia_container_toolkit_dropin }}" in dests
    assert not [d for d in dests if "containerd_config" in d]


def test_the_containerd_role_includes_no_role():
    for path, task in tasks("containerd"):
        name, _ = module(task)
        assert name not in INCLUDES, f"{path}: {task.get('name')}"


def test_the_options_that_served_rewriting_config_toml_are_gone():
    for role, names in (("nvidia_container_toolkit", ["nvidia_container_toolkit_containerd_manage_imports"]),
                        ("containerd", ["containerd_refresh_nvidia_dropin"])):
        for sub in ("defaults/main.yml", "meta/argument_specs.yml", "README.md", "vars/main.yml"):
            text = (ROLES / role / sub).read_text()
            for name in names:
                assert name not in text, f"roles/{role}/{sub}: {name}"
        for path in (ROLES / role).rglob("*"):
            if path.is_file():
                for name in names:
                    assert name not in path.read_text(errors="replace"), f"{path}: {name}"


def test_the_toolkit_entry_point_containerd():
    specs = yaml.safe_load((ROLES / "nvidia_container_toolkit" / "meta" / "argument_specs.yml").read_text())
    main, entry = specs["argument_specs"]["main"], specs["argument_specs"]["containerd"]
    assert entry["short_description"] and entry["description"]
    assert entry["options"], "the entry point checks its options"
    for name, spec in entry["options"].items():
        assert spec == main["options"][name], name  # the same option, not a second definition
    assert (ROLES / "nvidia_container_toolkit" / "tasks" / "containerd.yml").is_file()
    readme = (ROLES / "nvidia_container_toolkit" / "README.md").read_text()
    assert "tasks_from: containerd" in readme and "Entry point `containerd`" in readme


def test_the_containerd_role_publishes_the_stale_dropin_fact():
    facts = [task["ansible.builtin.set_fact"] for _, task in tasks("containerd") if "ansible.builtin.set_fact" in task]
    assert any("containerd_nvidia_dropin_stale" in fact for fact in facts)
    assert "`containerd_nvidia_dropin_stale`" in (ROLES / "containerd" / "README.md").read_text()


def test_the_container_runtime_playbook_composes_the_refresh():
    plays = yaml.safe_load((ROOT / "playbooks" / "container_runtime.yml").read_text())
    assert [r["role"] for r in plays[0]["roles"]] == ["gpuforge.cluster.containerd"]
    refresh = plays[1]
    assert {"containerd", "container_runtime"} <= set(refresh["tags"])
    assert refresh["hosts"] == plays[0]["hosts"]
    (task,) = refresh["tasks"]
    include = task["ansible.builtin.include_role"]
    assert include == {"name": TOOLKIT, "tasks_from": "containerd"}
    assert "containerd_nvidia_dropin_stale" in str(task["when"])


def test_site_runs_the_gpu_node_layer_after_the_container_runtime_layer():
    layers = [p["ansible.builtin.import_playbook"] for p in yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())]
    assert layers.index("container_runtime.yml") < layers.index("gpu_nodes.yml")
    gpu = yaml.safe_load((ROOT / "playbooks" / "gpu_nodes.yml").read_text())
    assert any(r.get("role") == TOOLKIT for play in gpu for r in play.get("roles", []))


def test_the_containerd_scenario_converges_with_the_playbook():
    converge = yaml.safe_load((ROOT / "molecule" / "containerd" / "converge.yml").read_text())
    assert [p.get("ansible.builtin.import_playbook") for p in converge] == ["../../playbooks/container_runtime.yml"]
