# -*- coding: utf-8 -*-
# Copyright: (c) gpuforge maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pure parsers behind gpuforge.cluster.nvidia_gpu_facts.

Every function takes text read from the host (``nvidia-smi -q -x``, ``nvidia-smi -q``,
``nvidia-smi -L``, ``lspci -n -D``, sysfs attribute files) and returns plain Python
data, so they can be unit-tested with real captured outputs. None of them touches
the host.

GPU records have the same keys whichever output they come from (see ``gpu_record``):
the ``nvidia-smi -q`` text is first turned into the element tree ``-q -x`` would
have printed, then read by the same code.

Values nvidia-smi prints for "no value" (``N/A``, ``Not Found``, ``[N/A]``,
``Not Supported``, ...) become ``None``. GPUs keep the order of the output
(nvidia-smi lists them in PCI bus order, which is its own index order); ``index``
is the position in that list, and ``minor_number`` (the N of ``/dev/nvidiaN``) is
reported separately because it can differ.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

NVIDIA_VENDOR_ID = "0x10de"

# What nvidia-smi prints where it has no value.
NULL_VALUES = frozenset([
    "", "n/a", "[n/a]", "not found", "not supported", "[not supported]", "unknown error",
    "[unknown error]", "insufficient permissions", "[insufficient permissions]",
    "requested functionality has been deprecated", "[requested functionality has been deprecated]",
    "gpu requires reset", "[gpu requires reset]",
])

_MEMORY_UNITS = {"b": 1.0 / 1048576, "kib": 1.0 / 1024, "kb": 1.0 / 1024, "mib": 1, "mb": 1, "gib": 1024, "gb": 1024}
_MEMORY_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
_INT_RE = re.compile(r"^\s*([+-]?(?:0x[0-9a-fA-F]+|[0-9]+))\s*([A-Za-z%]*)\s*$")
# nvidia-smi's PCI device id: 16-bit device then 16-bit vendor, e.g. 20B210DE.
_SMI_DEVICE_ID_RE = re.compile(r"^(?:0x)?([0-9a-fA-F]{4})(10de)$", re.IGNORECASE)
_BUS_ID_RE = re.compile(r"^([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$")
# A DOCTYPE with an internal subset (<!DOCTYPE x [ ... ]>) or any entity declaration:
# nvidia-smi never prints one; refuse it instead of letting expat expand entities.
_UNSAFE_DTD_RE = re.compile(r"<!DOCTYPE[^>\[]*\[|<!ENTITY", re.IGNORECASE)

# Messages of `nvidia-smi -q -x` that mean "this nvidia-smi cannot print XML" (then
# the plain-text `-q` output is used), as opposed to "the driver does not answer".
_XML_UNSUPPORTED_RE = re.compile(
    r"invalid combination of input arguments|not supported|unsupported|unknown option|invalid option|"
    r"unrecognized option",
    re.IGNORECASE,
)


class SmiParseError(ValueError):
    """The output is not what nvidia-smi prints (malformed XML, wrong document)."""


# --- values -----------------------------------------------------------------------

def clean(value):
    """Stripped text, or None for nvidia-smi's "no value" words and for None."""
    if value is None:
        return None
    value = " ".join(str(value).split())
    if value.lower() in NULL_VALUES:
        return None
    return value


def to_int(value):
    """Integer from "4", "0x1e", "16x"-style values ("16x" -> 16), None when not a number."""
    value = clean(value)
    if value is None:
        return None
    if value.lower().endswith("x") and value[:-1].isdigit():
        value = value[:-1]
    match = _INT_RE.match(value)
    if not match:
        return None
    number = match.group(1)
    try:
        return int(number, 16) if number.lower().startswith(("0x", "-0x", "+0x")) else int(number)
    except ValueError:
        return None


def memory_mib(value):
    """MiB from nvidia-smi memory values ("81920 MiB", "4096 MB", "80 GiB"); None for N/A."""
    value = clean(value)
    if value is None:
        return None
    match = _MEMORY_RE.match(value)
    if not match:
        return None
    unit = (match.group(2) or "MiB").lower()
    if unit not in _MEMORY_UNITS:
        return None
    return int(round(float(match.group(1)) * _MEMORY_UNITS[unit]))


def enabled(value):
    """True for "Enabled"/"On"/"Yes", False for "Disabled"/"Off"/"No", None otherwise (N/A)."""
    value = clean(value)
    if value is None:
        return None
    value = value.lower()
    if value in ("enabled", "enable", "on", "yes", "true"):
        return True
    if value in ("disabled", "disable", "off", "no", "false"):
        return False
    return None


def cuda_version(value):
    """CUDA version as nvidia-smi prints it ("12.2"); None for "Not Found" or a missing element."""
    return clean(value)


def pci_address(bus_id):
    """sysfs form of an nvidia-smi bus id: "00000000:07:00.0" -> "0000:07:00.0" (None if not a bus id)."""
    bus_id = clean(bus_id)
    if bus_id is None:
        return None
    match = _BUS_ID_RE.match(bus_id)
    if not match:
        return None
    domain, bus, device, function = match.groups()
    return "%04x:%02x:%02x.%s" % (int(domain, 16), int(bus, 16), int(device, 16), function)


def smi_device_id(value):
    """PCI device id from nvidia-smi's combined value: "20B210DE" -> "0x20b2".

    None when the value is N/A, redacted, or does not end in NVIDIA's vendor id.
    """
    value = clean(value)
    if value is None:
        return None
    match = _SMI_DEVICE_ID_RE.match(value)
    if not match:
        return None
    return "0x" + match.group(1).lower()


def _pci_class(base, sub):
    """"0x0302" from nvidia-smi's base class "3"/"0x3" and sub class "2"/"0x2"."""
    base, sub = to_int(base), to_int(sub)
    if base is None or sub is None:
        return None
    return "0x%02x%02x" % (base, sub)


# --- element helpers --------------------------------------------------------------

def _text(element, path):
    """Cleaned text of the element at `path` under `element` (direct path, no search)."""
    if element is None:
        return None
    found = element.find(path)
    if found is None:
        return None
    return clean(found.text)


def _first(element, *paths):
    for path in paths:
        value = _text(element, path)
        if value is not None:
            return value
    return None


def _number_or_text(value):
    number = to_int(value)
    return number if number is not None else clean(value)


# --- records ----------------------------------------------------------------------

def mig_device_record(element, position):
    """One MIG device from a <mig_device> element."""
    shared = element.find("device_attributes/shared")
    attributes = {}
    if shared is not None:
        for child in shared:
            attributes[child.tag] = _number_or_text(child.text)
    index = to_int(_text(element, "index"))
    return {
        "index": index if index is not None else position,
        "gpu_instance_id": to_int(_text(element, "gpu_instance_id")),
        "compute_instance_id": to_int(_text(element, "compute_instance_id")),
        "memory_total_mib": memory_mib(_text(element, "fb_memory_usage/total")),
        "bar1_memory_total_mib": memory_mib(_text(element, "bar1_memory_usage/total")),
        "sm_count": attributes.get("multiprocessor_count"),
        "attributes": attributes,
        # Neither is in the XML of the drivers seen so far; `nvidia-smi -L` has both.
        "profile": _text(element, "profile") or _text(element, "profile_name"),
        "uuid": _text(element, "uuid"),
    }


def gpu_record(element, position):
    """Everything gpuforge reports about one <gpu> element (see the module's RETURN)."""
    bus_id = _first(element, "pci/pci_bus_id") or clean(element.get("id"))
    current_mig = _text(element, "mig_mode/current_mig")
    mig_enabled = enabled(current_mig) is True
    mig_devices = []
    if mig_enabled:
        for pos, dev in enumerate(element.findall("mig_devices/mig_device")):
            mig_devices.append(mig_device_record(dev, pos))
    device_id_raw = _text(element, "pci/pci_device_id")
    if device_id_raw and device_id_raw.lower().startswith("0x"):
        device_id_raw = device_id_raw[2:]
    return {
        "index": position,
        "uuid": _text(element, "uuid"),
        "name": _text(element, "product_name"),
        "pci_bus_id": bus_id,
        "pci_address": pci_address(bus_id),
        "memory_total_mib": memory_mib(_text(element, "fb_memory_usage/total")),
        "mig_capable": element.find("mig_mode") is not None and current_mig is not None,
        "mig_enabled": mig_enabled,
        "mig_pending": enabled(_text(element, "mig_mode/pending_mig")),
        "mig_devices": mig_devices,
        "product_brand": _text(element, "product_brand"),
        "product_architecture": _text(element, "product_architecture"),
        # Not in any nvidia-smi XML so far; filled from --query-gpu=compute_cap when it answers.
        "compute_capability": _first(element, "compute_cap", "compute_capability", "cuda_compute_capability"),
        "minor_number": to_int(_text(element, "minor_number")),
        "serial": _text(element, "serial"),
        "vbios_version": _text(element, "vbios_version"),
        "persistence_mode": enabled(_text(element, "persistence_mode")),
        "ecc_enabled": enabled(_text(element, "ecc_mode/current_ecc")),
        "ecc_pending": enabled(_text(element, "ecc_mode/pending_ecc")),
        "compute_mode": _text(element, "compute_mode"),
        "driver_model": _text(element, "driver_model/current_dm"),
        "addressing_mode": _text(element, "addressing_mode"),
        "virtualization_mode": _text(element, "gpu_virtualization_mode/virtualization_mode"),
        "gsp_firmware_version": _text(element, "gsp_firmware_version"),
        "board_part_number": _text(element, "board_part_number"),
        "gpu_part_number": _text(element, "gpu_part_number"),
        "module_id": to_int(_first(element, "gpu_module_id", "platformInfo/module_id")),
        "pci_device_id": smi_device_id(device_id_raw),
        "pci_device_id_raw": device_id_raw,
        "pci_class": _pci_class(_text(element, "pci/pci_base_class"), _text(element, "pci/pci_sub_class")),
        "pcie_link_gen_max": to_int(_text(element, "pci/pci_gpu_link_info/pcie_gen/max_link_gen")),
        "pcie_link_gen_current": to_int(_text(element, "pci/pci_gpu_link_info/pcie_gen/current_link_gen")),
        "pcie_link_width_max": to_int(_text(element, "pci/pci_gpu_link_info/link_widths/max_link_width")),
        "pcie_link_width_current": to_int(_text(element, "pci/pci_gpu_link_info/link_widths/current_link_width")),
    }


def inventory(root):
    """Inventory from an <nvidia_smi_log> element: versions, GPUs and warnings."""
    if root.tag != "nvidia_smi_log":
        raise SmiParseError("not nvidia-smi output: the document element is <%s>, not <nvidia_smi_log>" % root.tag)
    gpus = [gpu_record(element, pos) for pos, element in enumerate(root.findall("gpu"))]
    attached = to_int(_text(root, "attached_gpus"))
    warnings = []
    if attached is not None and attached != len(gpus):
        warnings.append(
            "nvidia-smi reports attached_gpus=%d but its output describes %d GPU(s); "
            "gpu_count and gpus list the %d described" % (attached, len(gpus), len(gpus)))
    return {
        "driver_version": _text(root, "driver_version"),
        "cuda_version": cuda_version(_text(root, "cuda_version")),
        "attached_gpus": attached,
        "gpu_count": len(gpus),
        "gpus": gpus,
        "warnings": warnings,
    }


# --- nvidia-smi -q -x --------------------------------------------------------------

def parse_smi_xml(data):
    """Inventory from `nvidia-smi -q -x` output (str or bytes).

    Accepts every DTD version seen (v9 to v13, or none); the DOCTYPE's external DTD is
    never loaded (ElementTree does not fetch it). Raises SmiParseError for malformed XML,
    a document that is not nvidia-smi's, or one that declares entities.
    """
    if data is None:
        raise SmiParseError("no output")
    if isinstance(data, bytes):
        probe = data.decode("utf-8", "replace")
    else:
        probe = data
        data = data.encode("utf-8", "replace")
    if not probe.strip():
        raise SmiParseError("empty output")
    if _UNSAFE_DTD_RE.search(probe):
        raise SmiParseError("the document declares a DTD subset or entities, which nvidia-smi never prints")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise SmiParseError("malformed XML: %s" % exc)
    return inventory(root)


# --- nvidia-smi -q (text) ----------------------------------------------------------

_FB = {"Total": "total", "Reserved": "reserved", "Used": "used", "Free": "free"}

# Label -> XML tag, per parent tag. Labels not listed become snake_case tags.
TEXT_TAGS = {
    "nvidia_smi_log": {
        "Timestamp": "timestamp", "Driver Version": "driver_version", "CUDA Version": "cuda_version",
        "Attached GPUs": "attached_gpus",
    },
    "gpu": {
        "Product Name": "product_name", "Product Brand": "product_brand",
        "Product Architecture": "product_architecture", "Display Mode": "display_mode",
        "Display Active": "display_active", "Persistence Mode": "persistence_mode",
        "Addressing Mode": "addressing_mode", "MIG Mode": "mig_mode", "MIG Devices": "mig_devices",
        "Accounting Mode": "accounting_mode", "Driver Model": "driver_model", "Serial Number": "serial",
        "GPU UUID": "uuid", "Minor Number": "minor_number", "VBIOS Version": "vbios_version",
        "MultiGPU Board": "multigpu_board", "Board ID": "board_id", "Board Part Number": "board_part_number",
        "GPU Part Number": "gpu_part_number", "Module ID": "gpu_module_id", "Platform Info": "platformInfo",
        "GSP Firmware Version": "gsp_firmware_version", "GPU Virtualization Mode": "gpu_virtualization_mode",
        "PCI": "pci", "FB Memory Usage": "fb_memory_usage", "BAR1 Memory Usage": "bar1_memory_usage",
        "Compute Mode": "compute_mode", "ECC Mode": "ecc_mode", "Performance State": "performance_state",
    },
    "mig_mode": {"Current": "current_mig", "Pending": "pending_mig"},
    "ecc_mode": {"Current": "current_ecc", "Pending": "pending_ecc"},
    "driver_model": {"Current": "current_dm", "Pending": "pending_dm"},
    "mig_devices": {"MIG Device": "mig_device"},
    "mig_device": {
        "Index": "index", "GPU Instance ID": "gpu_instance_id", "Compute Instance ID": "compute_instance_id",
        "Device Attributes": "device_attributes", "ECC Errors": "ecc_error_count",
        "Shared FB Memory Usage": "fb_memory_usage", "FB Memory Usage": "fb_memory_usage",
        "Shared BAR1 Memory": "bar1_memory_usage", "BAR1 Memory Usage": "bar1_memory_usage",
    },
    "device_attributes": {"Shared": "shared"},
    "shared": {
        "Multiprocessor count": "multiprocessor_count", "Copy Engine count": "copy_engine_count",
        "Encoder count": "encoder_count", "Decoder count": "decoder_count", "OFA count": "ofa_count",
        "JPG count": "jpg_count",
    },
    "fb_memory_usage": _FB,
    "bar1_memory_usage": _FB,
    "pci": {
        "Bus": "pci_bus", "Device": "pci_device", "Domain": "pci_domain", "Base Classcode": "pci_base_class",
        "Sub Classcode": "pci_sub_class", "Device Id": "pci_device_id", "Bus Id": "pci_bus_id",
        "Sub System Id": "pci_sub_system_id", "GPU Link Info": "pci_gpu_link_info",
    },
    "pci_gpu_link_info": {"PCIe Generation": "pcie_gen", "Link Width": "link_widths"},
    "pcie_gen": {
        "Max": "max_link_gen", "Current": "current_link_gen", "Device Current": "device_current_link_gen",
        "Device Max": "max_device_link_gen", "Host Max": "max_host_link_gen",
    },
    "link_widths": {"Max": "max_link_width", "Current": "current_link_width"},
    "gpu_virtualization_mode": {"Virtualization Mode": "virtualization_mode", "Host VGPU Mode": "host_vgpu_mode"},
    "platformInfo": {"Module Id": "module_id"},
}

_LOG_HEADER_RE = re.compile(r"^=+\s*NVSMI LOG\s*=+$")
_GPU_HEADER_RE = re.compile(r"^GPU\s+([0-9A-Fa-f]{1,8}:[0-9A-Fa-f]{1,2}:[0-9A-Fa-f]{1,2}\.[0-7])$")
_KEY_VALUE_RE = re.compile(r"^(.*?\S)\s+:(?:\s(.*))?$")


def _slug(label):
    return re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_") or "value"


def smi_text_tree(text):
    """The element tree `nvidia-smi -q -x` would print, built from `nvidia-smi -q` text.

    Lines are "Label : value" or a bare "Label" opening a section; nesting is by
    indentation. "GPU <bus id>" lines at column 0 open a <gpu id="...">.
    """
    root = ET.Element("nvidia_smi_log")
    stack = [(-1, root)]
    for raw in (text or "").splitlines():
        line = raw.expandtabs(8).rstrip()
        if not line.strip() or _LOG_HEADER_RE.match(line.strip()):
            continue
        indent = len(line) - len(line.lstrip())
        content = line.strip()
        gpu = _GPU_HEADER_RE.match(content)
        if gpu and indent == 0:
            element = ET.SubElement(root, "gpu", {"id": gpu.group(1)})
            stack = [(-1, root), (0, element)]
            continue
        while len(stack) > 1 and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        match = _KEY_VALUE_RE.match(content)
        label, value = (match.group(1), match.group(2) or "") if match else (content, None)
        tag = TEXT_TAGS.get(parent.tag, {}).get(label) or _slug(label)
        if parent.tag == "gpu" and label == "MIG Device":
            # `-q` lists "MIG Device" sections straight under the GPU; -q -x wraps them.
            container = parent.find("mig_devices")
            if container is None:
                container = ET.SubElement(parent, "mig_devices")
            parent, tag = container, "mig_device"
        element = ET.SubElement(parent, tag)
        if value is not None:
            element.text = value
        stack.append((indent, element))
    return root


def parse_smi_query_text(text):
    """Inventory from `nvidia-smi -q` text output, with the keys of parse_smi_xml.

    Reads driver and CUDA versions, attached GPUs and, per GPU, everything gpu_record
    reads that the text shows (name, UUID, bus id, FB memory, MIG mode current/pending,
    the MIG devices, ...). Raises SmiParseError when the text is not `nvidia-smi -q` output.
    """
    if not re.search(r"^\s*=+\s*NVSMI LOG\s*=+\s*$|^Driver Version\s+:", text or "", re.MULTILINE):
        raise SmiParseError("not nvidia-smi -q output (no NVSMI LOG header nor Driver Version line)")
    return inventory(smi_text_tree(text))


# --- nvidia-smi -L -----------------------------------------------------------------

_LIST_GPU_RE = re.compile(r"^GPU\s+(\d+):\s+(.*?)\s+\(UUID:\s*([^)\s]+)\)\s*$")
_LIST_MIG_RE = re.compile(r"^\s+MIG\s+(\S+)\s+Device\s+(\d+):\s+\(UUID:\s*([^)\s]+)\)\s*$")


def parse_smi_list(text):
    """GPUs and MIG devices from `nvidia-smi -L`.

    "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)" and, below it,
    "  MIG 3g.40gb     Device  0: (UUID: MIG-...)" (also the R450 form
    "MIG 1g.5gb Device 0: (UUID: MIG-GPU-.../7/0)"). Returns
    [{index, name, uuid, mig_devices: [{index, profile, uuid}]}]; other lines are ignored.
    """
    gpus = []
    for line in (text or "").splitlines():
        line = line.rstrip()
        gpu = _LIST_GPU_RE.match(line)
        if gpu:
            gpus.append({"index": int(gpu.group(1)), "name": gpu.group(2), "uuid": gpu.group(3), "mig_devices": []})
            continue
        mig = _LIST_MIG_RE.match(line)
        if mig and gpus:
            gpus[-1]["mig_devices"].append({"index": int(mig.group(2)), "profile": mig.group(1), "uuid": mig.group(3)})
    return gpus


def merge_smi_list(gpus, listed):
    """Add MIG profile names and MIG UUIDs from parse_smi_list to GPU records (in place).

    GPUs are matched by UUID (by index when the list has no UUID match), MIG devices
    by their index. Values already set are kept.
    """
    by_uuid = dict((item["uuid"], item) for item in listed)
    by_index = dict((item["index"], item) for item in listed)
    for gpu in gpus:
        item = by_uuid.get(gpu.get("uuid")) or by_index.get(gpu["index"])
        if not item:
            continue
        devices = dict((dev["index"], dev) for dev in item["mig_devices"])
        for mig in gpu["mig_devices"]:
            dev = devices.get(mig["index"])
            if dev:
                mig["profile"] = mig["profile"] or dev["profile"]
                mig["uuid"] = mig["uuid"] or dev["uuid"]
    return gpus


# --- nvidia-smi --query-gpu --format=csv --------------------------------------------

def parse_query_csv(text, fields=None):
    """Rows of `nvidia-smi --query-*=... --format=csv[,noheader]` as dicts.

    With a header line, column names come from it (units such as " [MiB]" dropped);
    with `fields` given, the output is taken as having no header. Values are cleaned
    ("[N/A]" -> None).
    """
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return []
    if fields is None:
        fields = [re.sub(r"\s*\[[^\]]*\]\s*$", "", name.strip()) for name in lines[0].split(",")]
        lines = lines[1:]
    rows = []
    for line in lines:
        values = [value.strip() for value in line.split(", ")]
        if len(values) != len(fields):
            values = [value.strip() for value in line.split(",")]
        if len(values) != len(fields):
            continue
        rows.append(dict(zip(fields, [clean(value) for value in values])))
    return rows


def merge_compute_capability(gpus, rows):
    """Set compute_capability from parse_query_csv(..., fields=["uuid", "compute_cap"]) rows."""
    caps = dict((row["uuid"], row["compute_cap"]) for row in rows if row.get("uuid"))
    for gpu in gpus:
        if gpu.get("compute_capability") is None and caps.get(gpu.get("uuid")):
            gpu["compute_capability"] = caps[gpu["uuid"]]
    return gpus


# --- failures -------------------------------------------------------------------------

def smi_error_message(stdout, stderr):
    """The message of a failed nvidia-smi run: its non-empty lines, stdout first, joined."""
    lines = []
    for text in (stdout, stderr):
        for line in (text or "").splitlines():
            line = line.strip()
            if line and line not in lines:
                lines.append(line)
    return " ".join(lines) or "no output"


def xml_unsupported(message):
    """Whether a failed `nvidia-smi -q -x` says the XML output is not available (not a driver failure)."""
    return bool(_XML_UNSUPPORTED_RE.search(message or ""))


# --- PCI ------------------------------------------------------------------------------

def _hex_attr(text, width=None):
    """"0x10de\\n" -> "0x10de"; None when not hex."""
    value = (text or "").strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    if not value or any(c not in "0123456789abcdef" for c in value):
        return None
    if width:
        value = value.zfill(width)
    return "0x" + value


def is_nvidia_display(vendor_id, pci_class):
    """NVIDIA vendor (0x10de) and PCI base class 0x03 (VGA 0x0300, 3D 0x0302, other display 0x0380)."""
    vendor = _hex_attr(vendor_id)
    klass = _hex_attr(pci_class)
    if vendor != NVIDIA_VENDOR_ID or klass is None:
        return False
    digits = klass[2:]
    # sysfs has class+subclass+prog-if (6 digits, 0x030200); lspci -n has class+subclass (0302).
    digits = digits.zfill(6) if len(digits) > 4 else digits.zfill(4)
    return digits.startswith("03")


def sysfs_pci_device(address, vendor, device, pci_class, driver=None):
    """One pci_devices entry from the sysfs attribute files of a device (None when not NVIDIA display)."""
    if not is_nvidia_display(vendor, pci_class):
        return None
    klass = _hex_attr(pci_class, 6)
    return {
        "address": address,
        "vendor_id": _hex_attr(vendor, 4),
        "device_id": _hex_attr(device, 4),
        "class": "0x" + klass[2:6],
        "driver": driver,
    }


_LSPCI_RE = re.compile(
    r"^(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s+"
    r"(?:Class\s+)?([0-9a-fA-F]{4}):\s+([0-9a-fA-F]{4}):([0-9a-fA-F]{4})")


def parse_lspci(text):
    """NVIDIA display/3D devices from `lspci -n -D` ("0000:07:00.0 0302: 10de:20b2 (rev a1)")."""
    devices = []
    for line in (text or "").splitlines():
        match = _LSPCI_RE.match(line.strip())
        if not match:
            continue
        domain, slot, klass, vendor, device = match.groups()
        if not is_nvidia_display(vendor, klass):
            continue
        devices.append({
            "address": "%04x:%s" % (int(domain or "0", 16), slot.lower()),
            "vendor_id": "0x" + vendor.lower(),
            "device_id": "0x" + device.lower(),
            "class": "0x" + klass.lower(),
            "driver": None,
        })
    return devices


def pci_devices_from_gpus(gpus):
    """pci_devices entries for simulated GPUs (from the captured nvidia-smi output)."""
    return [{
        "address": gpu["pci_address"],
        "vendor_id": NVIDIA_VENDOR_ID,
        "device_id": gpu["pci_device_id"],
        "class": gpu["pci_class"],
        "driver": "nvidia",
    } for gpu in gpus]
