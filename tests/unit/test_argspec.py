"""The roles' argument specs as the source of truth of every variable (plugins/module_utils/argspec.py):
loading them, the typo hints, values in messages, a release written as a YAML number, constraints.
validate_value's types and choices are in test_filter_preflight.py."""

import pytest
from ansible_collections.gpuforge.cluster.plugins.module_utils import argspec

from conftest import ROOT

SPECS = argspec.load_argument_specs(ROOT / "roles")
KNOWN = sorted({name for options in SPECS.values() for name in options})


# --- suggest ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name, meant", [
    ("common_dissable_swap", "common_disable_swap"),  # a letter too many
    ("comon_disable_swap", "common_disable_swap"),  # the role prefix misspelt
    ("kubernets_control_plane_kube_vip_image", "kubernetes_control_plane_kube_vip_image"),
    ("nvidia_drivr_branch", "nvidia_driver_branch"),
    ("nvidia_driver_versoin", "nvidia_driver_version"),  # two letters swapped
    ("gpuforge_labb", "gpuforge_lab"),
    ("kubernetes_node_objects_label", "kubernetes_node_objects_labels"),  # the plural
    ("containerd_registry_mirror", "containerd_registry_mirrors"),
    ("cni_calico_mut", "cni_calico_mtu"),  # a short rest
    ("gpuforge_kubernetes_verison", "gpuforge_kubernetes_version"),
])
def test_close_names_get_the_name_they_meant(name, meant):
    assert argspec.suggest(name, KNOWN) == meant


@pytest.mark.parametrize("name", [
    "my_site_specific_variable_with_a_long_name",
    "site_name",
    "common_totally_new",
    # they share a long prefix with a known variable, but not what follows it
    "kubernetes_control_plane_audit_policy",  # not kubernetes_control_plane_api_sans
    "kubernetes_node_objects_annotations",  # not kubernetes_node_objects_taints
    "nvidia_container_toolkit_debug_logging",  # not nvidia_container_toolkit_version
    "nvidia_container_toolkit_runtime_name",  # not nvidia_container_toolkit_runtime_binary
    "nvidia_driver_dkms",  # not nvidia_driver_packages
    # sharing a long suffix is not enough either
    "site_containerd_registry_mirrors_for_the_lab_hosts",
])
def test_far_names_get_no_suggestion(name):
    assert argspec.suggest(name, KNOWN) is None


def test_suggest_edge_cases():
    assert argspec.suggest("anything", []) is None
    # the closest of several, ties by name
    assert argspec.suggest("gpu_worker", ["k8s_cluster", "control_plane", "workers", "gpu_workers"]) == "gpu_workers"
    assert argspec.suggest("ab", ["ac", "ad"], cutoff=0.5) == "ac"
    # a lower cutoff for choices: kubevip is kube_vip
    assert argspec.suggest("kubevip", ["none", "kube_vip", "external"], cutoff=0.6) == "kube_vip"
    assert argspec.suggest("banana", ["none", "kube_vip", "external"], cutoff=0.6) is None


# --- showing values ---------------------------------------------------------------------------


@pytest.mark.parametrize("value, shown", [
    (0, "0"), ("", "''"), ("0", "'0'"), (None, "null"), (True, "true"), (False, "false"), (1.5, "1.5"),
    ([1, "a"], "[1, 'a']"), ({"a": (1, 2)}, "{'a': [1, 2]}"),
])
def test_show(value, shown):
    assert argspec.show(value) == shown


def test_plain_copies_into_plain_types():
    class Text(str):
        pass

    value = {"a": (1, {Text("b")}), Text("c"): Text("d")}
    got = argspec.plain(value)
    assert got == {"a": [1, ["b"]], "c": "d"}
    assert type(got["c"]) is str and type(list(got)[1]) is str


def test_float_hint():
    assert argspec.float_hint(1.3) == ' (YAML read it as the number 1.3: quote it, "1.3", so that it stays text)'
    # with the text the inventory's file wrote (inventory.InventoryFiles.numbers), the hint quotes that
    assert argspec.float_hint(1.3, "1.30") == ' (YAML read 1.30 as the number 1.3: quote it, "1.30", so that it stays text)'
    assert argspec.float_hint(3) == ' (YAML read it as the number 3: quote it, "3", so that it stays text)'
    assert argspec.float_hint("1.30") == ""
    assert argspec.float_hint(True) == ""


# --- validate_value ---------------------------------------------------------------------------


def test_a_release_written_as_a_number():
    spec = SPECS["cluster_model"]["gpuforge_kubernetes_version"]
    # gpuforge_kubernetes_version: 1.30 is the float 1.3 by the time anyone reads it
    assert argspec.validate_value("gpuforge_kubernetes_version", 1.3, spec) == [
        ("variable_type", '1.3 is a number, not text (YAML read it as the number 1.3: quote it, "1.3", so that it '
                          'stays text)')]
    assert argspec.validate_value("gpuforge_kubernetes_version", "1.30.0", spec) == []
    # a word is text: its type is fine, the variable rules judge it (test_variable_rules.py)
    assert argspec.validate_value("gpuforge_kubernetes_version", "latest", spec) == []
    # a number where the default is no release is just converted
    assert argspec.validate_value("gpuforge_cluster_name", 5, SPECS["cluster_model"]["gpuforge_cluster_name"]) == []


def test_choices_get_a_hint():
    spec = SPECS["cluster_model"]["gpuforge_ha_mode"]
    assert argspec.validate_value("gpuforge_ha_mode", "kubevip", spec) == [
        ("variable_choice", "'kubevip' is not one of the allowed values (none, kube_vip, external); did you mean "
                            "kube_vip?")]
    assert argspec.validate_value("gpuforge_ha_mode", "keepalived", spec) == [
        ("variable_choice", "'keepalived' is not one of the allowed values (none, kube_vip, external)")]


@pytest.mark.parametrize("value, constraint, problems", [
    (-5, {"min": 0}, [("variable_range", "-5 is below the minimum 0")]),
    (10 ** 9, {"min": 0, "max": 67108864}, [("variable_range", "1000000000 is above the maximum 67108864")]),
    (0, {"min": 0}, []),
    ("a" * 100, {"max_length": 63}, [("variable_range", "is 100 characters long, more than the 63 allowed")]),
    ("10.1.2", {"format": "ip"}, [("variable_format", "'10.1.2' is not an IP address")]),
    ("", {"format": "ip"}, []),
    ("three", {"format": "version"}, [("variable_format", "'three' is not a version such as '3.8'")]),
    ("3.8.1", {"format": "version"}, []),
    ("3.8 beta", {"format": "version"}, [("variable_format", "'3.8 beta' is not a version such as '3.8'")]),
    ("var", {"format": "absolute_path"}, [("variable_format", "'var' is not an absolute path")]),
    (True, {"min": 1}, []),  # a bool is no number
])
def test_check_constraint(value, constraint, problems):
    assert argspec.check_constraint(value, constraint) == problems


def test_constraints_apply_after_the_type():
    # '-5' from the command line is the int -5
    assert argspec.validate_value("x", "-5", {"type": "int"}, {"min": 0}) == [
        ("variable_range", "'-5' is below the minimum 0")]
    # a value of the wrong type reports only that
    assert argspec.validate_value("x", "lots", {"type": "int"}, {"min": 0}) == [
        ("variable_type", "'lots' is not a valid int")]


def test_expected_and_secrets():
    assert argspec.expected({"type": "list", "elements": "str"}) == "list of str"
    assert argspec.expected({"type": "str", "choices": ["a", "b"]}, {"max_length": 63}) == "str in [a, b], max_length 63"
    assert argspec.expected({}, {"min": 0, "max": 9}) == "str, min 0, max 9"
    assert argspec.secret("nvidia_driver_secure_boot_mok_key", {"no_log": True})
    assert argspec.secret("site_registry_password", {})
    assert argspec.secret("kubeadm_token", None)
    assert not argspec.secret("common_disable_swap", {"type": "bool"})


def test_version_tuple():
    assert argspec.version_tuple("3.8") == (3, 8)
    assert argspec.version_tuple(" 3.10.1 ") == (3, 10, 1)
    assert argspec.version_tuple("3") == (3,)
    assert argspec.version_tuple("3.8rc1") is None
    assert argspec.version_tuple("") is None


# --- loading ----------------------------------------------------------------------------------


def test_every_role_is_loaded_with_its_entry_points_merged():
    roles = {p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml")}
    assert set(SPECS) == roles
    assert "cluster_model" in SPECS and "kubernetes_drain" in SPECS
    # kubernetes_drain's uncordon entry point defines kubernetes_drain_node again; main's is kept
    assert SPECS["kubernetes_drain"]["kubernetes_drain_node"]["required"] is True
    assert "preflight_report_path" in SPECS["preflight"]  # the inventory entry point's


def test_loaded_specs_are_copies():
    specs = argspec.load_argument_specs(ROOT / "roles")
    specs["cluster_model"]["gpuforge_cluster_name"]["default"] = "changed"
    assert argspec.load_argument_specs(ROOT / "roles")["cluster_model"]["gpuforge_cluster_name"]["default"] == "gpuforge"
    # the default folder is the collection's roles
    assert argspec.load_argument_specs() == SPECS


def test_defaults_of_a_role():
    assert argspec.defaults({"a": {"default": 1}, "b": {}, "c": None}) == {"a": 1, "b": None, "c": None}


def test_convert_refuses_unknown_types():
    with pytest.raises(argspec.SpecError, match="unsupported argument spec type 'uuid'"):
        argspec.convert("x", "uuid")
