"""What every role promises (docs/development.md): argument specs whose defaults are
defaults/main.yml, role-prefixed variable names, a README naming every variable, meta with
the collection's namespace, and a Molecule scenario of its own."""

from pathlib import Path

import pytest
import yaml

from ansible_collections.gpuforge.cluster.plugins.filter import preflight as pf

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())
# The one exception to the role prefix: cluster_model is the home of the cluster-wide variables, which
# carry gpuforge_ (they belong to the cluster, not to the role). Every other role's carry its name.
PREFIXES = {"cluster_model": "gpuforge_"}


def prefix(role):
    return PREFIXES.get(role, role + "_")


def test_the_roles():
    assert {"preflight", "common", "nvidia_driver", "nvidia_container_toolkit"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_defaults_match_the_argument_spec(role):
    options = pf.preflight_load_argument_specs(ROOT / "roles")[role]
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    # A required option (kubernetes_drain_node: the caller names the node) has no default, in the spec or in
    # defaults/main.yml; every other option has its default in both.
    required = {name for name, spec in options.items() if spec.get("required")}
    for name in required:
        assert "default" not in options[name], f"{name} is required and has a default"
    assert set(defaults) == set(options) - required, set(defaults) ^ (set(options) - required)
    for name, value in defaults.items():
        assert options[name].get("default") == value, name


@pytest.mark.parametrize("role", ROLES)
def test_variables_are_prefixed_and_documented(role):
    options = pf.preflight_load_argument_specs(ROOT / "roles")[role]
    readme = (ROOT / "roles" / role / "README.md").read_text()
    for name, spec in options.items():
        assert name.startswith(prefix(role)), name
        assert spec.get("description"), f"{name} has no description"
        assert name in readme, f"{name} is not in roles/{role}/README.md"
    internal = yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text()) or {} \
        if (ROOT / "roles" / role / "vars" / "main.yml").is_file() else {}
    for name in internal:
        assert name.startswith(f"__{role}_"), f"roles/{role}/vars/main.yml: {name}"


def test_only_the_cluster_model_has_cluster_wide_variables():
    specs = pf.preflight_load_argument_specs(ROOT / "roles")
    assert specs["cluster_model"] and all(name.startswith("gpuforge_") for name in specs["cluster_model"])
    for role in ROLES:
        if role != "cluster_model":
            assert not [n for n in specs[role] if n.startswith("gpuforge_")], role


@pytest.mark.parametrize("role", ROLES)
def test_meta_and_scenario(role):
    meta = yaml.safe_load((ROOT / "roles" / role / "meta" / "main.yml").read_text())
    assert meta["galaxy_info"]["namespace"] == "gpuforge" and meta["galaxy_info"]["role_name"] == role
    scenario = ROOT / "molecule" / role
    assert (scenario / "molecule.yml").is_file() and (scenario / "converge.yml").is_file()
    tests = list((scenario / "tests").glob("test_*.py"))
    assert tests, f"molecule/{role} has no Testinfra verifier"
    converge = yaml.safe_load((scenario / "converge.yml").read_text())
    texts = [(scenario / "converge.yml").read_text()] + [
        (scenario / play["ansible.builtin.import_playbook"]).read_text()
        for play in converge if "ansible.builtin.import_playbook" in play]
    assert any(f"gpuforge.cluster.{role}" in text for text in texts), f"molecule/{role} does not run the role"
