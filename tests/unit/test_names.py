"""Names and patterns defined once (plugins/module_utils/names.py): what a Kubernetes name, a label, a
release, a driver branch, an address, an endpoint, a registry, an image, a SHA-256 and a URL look like.
Every predicate with values that pass and values that do not, non-ASCII and trailing newlines included
(a value from a YAML block scalar ends in one)."""

import ipaddress

import pytest
from ansible_collections.gpuforge.cluster.plugins.module_utils import names as n


# --- DNS-1123 names ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["gpu-01", "a", "0", "k8s-cp-01", "a" * 63])
def test_dns1123_labels(value):
    assert n.is_dns1123_label(value)
    assert n.is_dns1123_subdomain(value)
    assert n.dns1123_problems(value, label=True) == []


@pytest.mark.parametrize("value", ["gpu-01.rack-2.example", "a.b.c", "%s.%s" % ("a" * 63, "b" * 63)])
def test_dns1123_subdomains_that_are_no_labels(value):
    assert n.is_dns1123_subdomain(value)
    assert not n.is_dns1123_label(value)


@pytest.mark.parametrize("value", ["", "GPU-01", "gpu_01", "-gpu", "gpu-", "a..b", "a" * 64, "gpü-01", "gpu 01",
                                   "gpu-01\n", "gpu-01 ", 5, None, "ノード"])
def test_not_dns1123(value):
    assert not n.is_dns1123_label(value)
    assert not n.is_dns1123_subdomain(value)


@pytest.mark.parametrize("value, label, reasons", [
    ("gpu-01", False, []),
    ("", False, ["is empty"]),
    ("GPU-01", False, ["has uppercase letters"]),
    ("gpu_01", False, ["has characters other than a-z, 0-9, '-' and '.' ('_')"]),
    ("gpu_01", True, ["has characters other than a-z, 0-9, '-' ('_')"]),
    # non-ASCII characters are named with their code point
    ("gpü-01", False, ["has characters other than a-z, 0-9, '-' and '.' ('ü' (U+00FC))"]),
    ("Émile", False, ["has uppercase letters", "has characters other than a-z, 0-9, '-' and '.' ('É' (U+00C9))"]),
    ("ノード", False, ["has characters other than a-z, 0-9, '-' and '.' ('ド' (U+30C9), 'ノ' (U+30CE), "
                      "'ー' (U+30FC))"]),
    ("gpu 01", False, ["has characters other than a-z, 0-9, '-' and '.' (' ' (space))"]),
    ("gpu\t01", False, ["has characters other than a-z, 0-9, '-' and '.' (a tab)"]),
    ("gpu-01\n", False, ["has characters other than a-z, 0-9, '-' and '.' ('\\n' (U+000A))"]),
    ("-gpu", False, ["has a label that does not start and end with a letter or digit"]),
    ("gpu.-01", False, ["has a label that does not start and end with a letter or digit"]),
    ("a..b", False, ["has a label that does not start and end with a letter or digit"]),
    # a dot is not allowed in a label (gpuforge_cluster_name)
    ("gpu.lab", True, ["has characters other than a-z, 0-9, '-' ('.')"]),
    ("a" * 64, False, ["is too long (64 characters, its longest label 64; at most 253 and 63 per label)"]),
    ("a" * 64, True, ["is too long (64 characters; at most 63)"]),
    ("a." * 127 + "a", False, ["is too long (255 characters, its longest label 1; at most 253 and 63 per label)"]),
])
def test_dns1123_problems(value, label, reasons):
    assert n.dns1123_problems(value, label=label) == reasons


def test_characters_as_messages_show_them():
    assert n.describe_character("_") == "'_'"
    assert n.describe_character(" ") == "' ' (space)"
    assert n.describe_character("\t") == "a tab"
    assert n.describe_character("\x01") == "'\\x01' (U+0001)"
    assert n.describe_character("é") == "'é' (U+00E9)"
    assert n.non_ascii("gpu-01") == []
    assert n.non_ascii("gpü-ノü") == ["'ü' (U+00FC)", "'ノ' (U+30CE)"]


# --- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key, prefixed, ok", [
    ("nvidia.com/gpu.product", False, True),
    ("nvidia.com/gpu.product", True, True),
    ("topology.kubernetes.io/zone", False, True),
    ("zone", False, True),
    ("zone", True, False),  # the GPU labels all carry a prefix
    ("gpuforge.io/" + "a" * 63, False, True),
    ("gpuforge.io/" + "a" * 64, False, False),
    ("%s/name" % ".".join(["a" * 63] * 4), False, False),  # a prefix of 255 characters
    ("Nvidia.com/gpu", False, False),  # the prefix is a lowercase DNS name
    ("nvidia.com/", False, False),
    ("/gpu", False, False),
    ("a/b/c", False, False),
    ("bad key", False, False),
    ("gpuforge.io/pöol", False, False),
    ("nvidia.com/gpu\n", False, False),
    (None, False, False),
])
def test_label_keys(key, prefixed, ok):
    assert n.is_label_key(key, prefixed=prefixed) is ok


@pytest.mark.parametrize("value, ok", [
    ("", True), ("true", True), ("NVIDIA-A100-SXM4-80GB", True), ("535.54.03", True), ("a_b-c.d", True),
    ("a" * 63, True), ("a" * 64, False), ("-a", False), ("a-", False), ("gpu pool", False), ("ü", False),
    ("true\n", False), (True, False), (1, False),
])
def test_label_values(value, ok):
    assert n.is_label_value(value) is ok


# --- releases, durations, drivers -------------------------------------------------------------


@pytest.mark.parametrize("value, parts", [
    ("1.37.2", (1, 37, 2)), (" 1.37.2 ", (1, 37, 2)), ("1.37.2\n", (1, 37, 2)), ("10.0.100", (10, 0, 100)),
    ("v1.37.2", None), ("1.37", None), ("1.37.2.1", None), ("latest", None), (1.3, None), (None, None),
    (True, None), ("", None),
    ("١.٣٧.٢", None),  # Arabic-Indic digits: \d would take them
    ("１.37.2", None),  # a full-width digit
])
def test_release(value, parts):
    assert n.release(value) == parts


@pytest.mark.parametrize("value, ok", [
    ("30m", True), ("1h30m", True), ("1.5h", True), ("90s", True), ("500ms", True),
    ("0s", False), ("0", False), ("", False), (None, False), ("30", False), ("30 m", False), ("1d", False),
    ("30m\n", False), ("３0m", False),
])
def test_durations(value, ok):
    assert n.is_duration(value) is ok


def test_zero_durations_when_allowed():
    assert n.is_duration("0s", positive=False)
    assert not n.is_duration("", positive=False)


@pytest.mark.parametrize("value, branch, version", [
    ("580", True, False), ("535", True, False), (580, True, False), (" 580 ", True, False), ("1000", True, False),
    ("580.95.05", False, True), ("570.26", False, True), ("535.54.03", False, True),
    ("96", False, False), ("96.43.23", False, False),  # a branch is 3 or 4 digits
    ("058", False, False), ("10000", False, False), ("R580", False, False), ("580.", False, False),
    ("580.95.05.1", False, False), ("580.1234", False, False), ("banana", False, False), ("", False, False),
    ("５80", False, False), ("580\n", True, False),  # surrounding whitespace is stripped
])
def test_driver_branches_and_versions(value, branch, version):
    assert n.is_driver_branch(value) is branch
    assert n.is_driver_version(value) is version


# --- addresses and endpoints ------------------------------------------------------------------


@pytest.mark.parametrize("value, ok", [
    ("10.20.0.11", True), ("fd00::10", True), (" 10.20.0.11 ", True), ("10.20.0.300", False), ("10.20.0", False),
    ("", False), (None, False), ("host", False), ("١٠.0.0.1", False),
])
def test_ip(value, ok):
    assert n.is_ip(value) is ok
    assert (n.ip(value) is not None) is ok


def test_ip_and_network_objects():
    assert n.ip("fd00::10") == ipaddress.ip_address("fd00::10")
    assert n.network("10.244.0.0/16") == ipaddress.ip_network("10.244.0.0/16")
    assert n.network("fd00:10:244::/56").version == 6
    assert n.network("10.244.0.1/16") is None  # host bits set
    assert n.network("10.244.0.0/33") is None
    assert n.network("not-a-net") is None
    assert n.network(None) is None


@pytest.mark.parametrize("value, ok", [
    ("gpu-01", True), ("gpu-01.example.internal", True), ("GPU-01", True), ("10.0.0.1", True), ("a" * 63, True),
    ("gpu_01", False), ("-gpu", False), ("gpu-01.", False), ("", False), ("gpü", False), ("host\n", False),
    ("a" * 254, False), (None, False),
])
def test_host_names(value, ok):
    assert n.is_hostname(value) is ok


@pytest.mark.parametrize("value, parts", [
    ("10.0.0.10", ("10.0.0.10", 6443)),
    ("api.gpu.example.internal:8443", ("api.gpu.example.internal", 8443)),
    ("[fd00::10]:7443", ("fd00::10", 7443)),
    ("[fd00::10]", ("fd00::10", 6443)),
    ("fd00::10", ("fd00::10", 6443)),
    (" api:6443 ", ("api", 6443)),
])
def test_split_endpoint(value, parts):
    assert n.split_endpoint(value) == parts


def test_split_endpoint_default_port():
    assert n.split_endpoint("api", default_port=8443) == ("api", 8443)


@pytest.mark.parametrize("value, reason", [
    ("", "empty"), (None, "empty"), ("api:0", "port '0' is not 1-65535"), ("api:70000", "port '70000' is not 1-65535"),
    ("api:port", "port 'port' is not 1-65535"), ("api:６443", "is not 1-65535"), ("[fd00::10]x", "junk after ]"),
    ("bad_host:6443", "'bad_host' is neither an IP address nor a DNS name"), ("fd00::zz", "hex digits"),
    ("[10.0.0.1]:6443", "parts expected"),  # brackets are for IPv6 addresses
    ("api\n:6443", "neither an IP address nor a DNS name"),
])
def test_split_endpoint_refuses(value, reason):
    with pytest.raises(ValueError, match=reason):
        n.split_endpoint(value)


def test_join_endpoint():
    assert n.join_endpoint("10.0.0.10", 6443) == "10.0.0.10:6443"
    assert n.join_endpoint("fd00::10", "7443") == "[fd00::10]:7443"
    assert n.join_endpoint("api.example.internal", 443) == "api.example.internal:443"


# --- registries and images --------------------------------------------------------------------


@pytest.mark.parametrize("value, host, registry", [
    ("mirror.example.internal", True, True),
    ("mirror.example.internal:5000", True, True),
    ("_default", True, False),  # hosts.toml's folder for every registry
    ("mirror.example.internal:5000/cni", False, True),
    ("mirror:5000/k8s/sub_path", False, True),
    ("https://mirror.example.internal", False, False),
    ("mirror.example.internal/", False, False),
    ("mirror.example.internal:5000/CNI", False, False),  # path components are lowercase
    ("mirror example", False, False),
    ("mirrör.example", False, False),
    ("mirror:5000\n", False, False),
    ("", False, False),
])
def test_registries(value, host, registry):
    assert n.is_registry_host(value) is host
    assert n.is_registry(value) is registry


@pytest.mark.parametrize("value, ok", [
    ("registry.k8s.io/pause:3.10", True),
    ("mirror.example.internal:5000/kube-vip/kube-vip:v1.0.3", True),
    ("m/kube-vip:v1", True),
    ("busybox", True),
    ("ghcr.io/kube-vip/kube-vip@sha256:" + "a" * 64, True),
    ("registry.k8s.io/pause 3.10", False),
    ("registry.k8s.io/Pause:3.10", False),
    ("registry.k8s.io/pause:", False),
    ("registry.k8s.io/pause:-1", False),
    ("m/kube-vip:vé", False),  # a tag is ASCII word characters, dots and dashes
    ("m/kube-vip:v١", False),
    ("m/kube-vip:v1\n", False),
    ("", False),
    (None, False),
])
def test_images(value, ok):
    assert n.is_image(value) is ok


# --- downloads --------------------------------------------------------------------------------


def test_sha256():
    assert n.is_sha256("e9a8812ccf2b9e27c85de837d244c14ec4d7d6dcd0f9d87c0202297b8f9090c1")
    assert n.is_sha256("E9A8812CCF2B9E27C85DE837D244C14EC4D7D6DCD0F9D87C0202297B8F9090C1")
    assert not n.is_sha256("e9a8812c")
    assert not n.is_sha256("g" * 64)
    assert not n.is_sha256("a" * 64 + "\n")
    assert not n.is_sha256(None)


@pytest.mark.parametrize("value, scheme", [
    ("https://mirror.example.internal/containerd.tar.gz", "https"),
    ("http://mirror.example.internal/x", "http"),
    ("file:///srv/gpuforge/containerd.tar.gz", "file"),
    ("ftp://mirror/x", None),
    ("mirror/containerd", None),
    ("https://", None),
    ("https://mirror/x y", None),
    ("https://mirror/x\n", None),
    ("", None),
    (None, None),
])
def test_url_scheme(value, scheme):
    assert n.url_scheme(value) == scheme


def test_http_url_prefix():
    assert n.HTTP_URL_RE.match("https://mirror.example.internal:5000")
    assert n.HTTP_URL_RE.match("http://m")
    assert not n.HTTP_URL_RE.match("ftp://m")
