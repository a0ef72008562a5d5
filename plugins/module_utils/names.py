# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Names and patterns, defined once: what a Kubernetes name, a release, a registry, a label key,
an NVIDIA driver branch ... looks like.

Plain Python (no Ansible import), so that modules running on a host (through module_utils), the
filters, the variable rules, preflight and the test harness all use the same definitions.
"""

from __future__ import annotations

import ipaddress
import re

# Every pattern ends in \Z, not $ (which also matches before a trailing newline: "gpu-01\n" would pass), and
# digits and word characters are ASCII only ([0-9], re.ASCII: \d and \w match other scripts' digits too).

# --- Kubernetes object names -----------------------------------------------------------------
# A DNS-1123 label: at most 63 lowercase letters, digits and '-', alphanumeric at both ends.
# A DNS-1123 subdomain (node names, namespaces' objects): labels joined by '.', 253 at most.
DNS1123_LABEL_PATTERN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_RE = re.compile(r"^%s\Z" % DNS1123_LABEL_PATTERN)
DNS1123_SUBDOMAIN_RE = re.compile(r"^%s(\.%s)*\Z" % (DNS1123_LABEL_PATTERN, DNS1123_LABEL_PATTERN))
DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253


def is_dns1123_label(value):
    return isinstance(value, str) and len(value) <= DNS1123_LABEL_MAX and bool(DNS1123_LABEL_RE.match(value))


def is_dns1123_subdomain(value):
    return (isinstance(value, str) and len(value) <= DNS1123_SUBDOMAIN_MAX and bool(DNS1123_SUBDOMAIN_RE.match(value))
            and all(len(label) <= DNS1123_LABEL_MAX for label in value.split(".")))


def dns1123_problems(value, label=False):
    """Why ``value`` is not a DNS-1123 subdomain (or label): a list of reasons, empty when it is one."""
    text = str(value)
    ok = is_dns1123_label(text) if label else is_dns1123_subdomain(text)
    if ok:
        return []
    reasons = []
    if not text:
        return ["is empty"]
    if text != text.lower():
        reasons.append("has uppercase letters")
    odd = sorted(set(re.findall(r"[^A-Za-z0-9.-]" if not label else r"[^A-Za-z0-9-]", text)))
    if odd:
        reasons.append("has characters other than a-z, 0-9, '-'%s (%s)" % (
            "" if label else " and '.'", ", ".join(describe_character(c) for c in odd)))
    if re.search(r"(^[-.])|([-.]$)|(\.\.)|(-\.)|(\.-)", text):
        reasons.append("has a label that does not start and end with a letter or digit")
    longest = max(len(part) for part in text.split("."))
    if (len(text) > (DNS1123_LABEL_MAX if label else DNS1123_SUBDOMAIN_MAX)) or longest > DNS1123_LABEL_MAX:
        reasons.append("is too long (%d characters%s; at most %d%s)" % (
            len(text), "" if label else ", its longest label %d" % longest,
            DNS1123_LABEL_MAX if label else DNS1123_SUBDOMAIN_MAX, "" if label else " and 63 per label"))
    return reasons or ["is malformed"]


def describe_character(char):
    """A character as a message shows it: 'é' (U+00E9), ' ' (space), '_'."""
    if char == " ":
        return "' ' (space)"
    if char == "\t":
        return "a tab"
    if ord(char) > 126 or ord(char) < 32:
        return "%r (U+%04X)" % (char, ord(char))
    return "'%s'" % char


def non_ascii(value):
    """The non-ASCII characters of a text, described; [] when it is plain ASCII."""
    return [describe_character(c) for c in sorted(set(str(value))) if ord(c) > 126]


# --- Kubernetes labels and annotations --------------------------------------------------------
LABEL_NAME_PATTERN = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_NAME_RE = re.compile(r"^%s\Z" % LABEL_NAME_PATTERN)
LABEL_KEY_RE = re.compile(r"^(%s(\.%s)*/)?%s\Z" % (DNS1123_LABEL_PATTERN, DNS1123_LABEL_PATTERN, LABEL_NAME_PATTERN))
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?\Z")


def is_label_key(key, prefixed=False):
    """A label (or taint) key: ``[prefix/]name``, the prefix a DNS subdomain of 253 characters at most.
    ``prefixed``: the prefix is required (the labels gpuforge derives from GPUs carry nvidia.com/)."""
    if not isinstance(key, str) or not LABEL_KEY_RE.match(key):
        return False
    if "/" not in key:
        return not prefixed
    return len(key.split("/", 1)[0]) <= DNS1123_SUBDOMAIN_MAX


def is_label_value(value):
    return isinstance(value, str) and bool(LABEL_VALUE_RE.match(value))


# --- Releases, durations ----------------------------------------------------------------------
RELEASE_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\Z")
DURATION_RE = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+\Z")


def release(value):
    """(major, minor, patch) of an X.Y.Z release (no 'v'), or None."""
    text = "" if value is None or isinstance(value, bool) else str(value).strip()
    return tuple(int(p) for p in text.split(".")) if RELEASE_RE.match(text) else None


def is_duration(value, positive=True):
    """A Go duration such as 30m or 1h30m; ``positive``: above zero."""
    text = str(value or "")
    return bool(DURATION_RE.match(text)) and (not positive or any(c.isdigit() and c != "0" for c in text))


# --- NVIDIA drivers ---------------------------------------------------------------------------
# A driver branch is its major number (535, 580); a version adds one or two parts (535.261.03).
DRIVER_BRANCH_PATTERN = r"[1-9][0-9]{2,3}"
DRIVER_BRANCH_RE = re.compile(r"^%s\Z" % DRIVER_BRANCH_PATTERN)
DRIVER_VERSION_RE = re.compile(r"^(%s)(?:\.([0-9]{1,3}))?(?:\.([0-9]{1,3}))?\Z" % DRIVER_BRANCH_PATTERN)


def is_driver_branch(value):
    return bool(DRIVER_BRANCH_RE.match(str(value).strip()))


def is_driver_version(value):
    """A full driver version (branch and at least one more part)."""
    match = DRIVER_VERSION_RE.match(str(value).strip())
    return bool(match and match.group(2) is not None)


# --- Hosts, addresses, endpoints --------------------------------------------------------------
HOSTNAME_RE = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\Z")


def is_ip(value):
    try:
        ipaddress.ip_address(str(value).strip())
        return True
    except ValueError:
        return False


def ip(value):
    """ipaddress address of a text, or None."""
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None


def network(value):
    """ipaddress network of a CIDR string (host bits zero), or None."""
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return None


def is_hostname(value):
    return isinstance(value, str) and bool(HOSTNAME_RE.match(value))


def split_endpoint(value, default_port=6443):
    """(host, port) of ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; ValueError when malformed."""
    text = str(value or "").strip()
    if not text:
        raise ValueError("empty")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        ipaddress.IPv6Address(host)
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            raise ValueError("junk after ]")
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif text.count(":") > 1:
        ipaddress.IPv6Address(text)
        host, port = text, None
    else:
        host, port = text, None
    if not (is_ip(host) or HOSTNAME_RE.match(host)):
        raise ValueError("%r is neither an IP address nor a DNS name" % host)
    if port is None:
        return host, int(default_port)
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError("port %r is not 1-65535" % port)
    return host, int(port)


def join_endpoint(host, port):
    """``host:port``, an IPv6 address in brackets."""
    return "[%s]:%d" % (host, int(port)) if ":" in str(host) else "%s:%d" % (host, int(port))


# --- Registries and images --------------------------------------------------------------------
# A registry host[:port]; a registry with a path (a mirror's project: host[:port]/path); an image.
_REGISTRY_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REGISTRY_HOST_RE = re.compile(r"^%s\Z" % _REGISTRY_HOST)
REGISTRY_RE = re.compile(r"^%s(?:/%s)*\Z" % (_REGISTRY_HOST, _PATH_COMPONENT))
IMAGE_RE = re.compile(r"^(?:%s/)?%s(?:/%s)*(?::[\w][\w.-]{0,127})?(?:@[A-Za-z0-9+._-]+:[0-9a-fA-F]{32,})?\Z"
                      % (_REGISTRY_HOST, _PATH_COMPONENT, _PATH_COMPONENT), re.ASCII)


def is_registry_host(value):
    """host[:port] as containerd's hosts.toml folders name registries (``_default``: every registry)."""
    return isinstance(value, str) and (value == "_default" or bool(REGISTRY_HOST_RE.match(value)))


def is_registry(value):
    """host[:port] with an optional path (a mirror's project), no scheme, no trailing slash."""
    return isinstance(value, str) and bool(REGISTRY_RE.match(value))


def is_image(value):
    return isinstance(value, str) and bool(IMAGE_RE.match(value))


# --- Downloads --------------------------------------------------------------------------------
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}\Z")
URL_RE = re.compile(r"^(https?|file)://\S+\Z")
HTTP_URL_RE = re.compile(r"^https?://[^/\s]+")


def is_sha256(value):
    return isinstance(value, str) and bool(SHA256_RE.match(value))


def url_scheme(value):
    """'https', 'http', 'file' of a URL, or None when it is not one."""
    match = URL_RE.match(str(value or ""))
    return match.group(1) if match else None
