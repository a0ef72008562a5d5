"""`gpuforge` command line: `gpuforge lab image|up|down|status`, `gpuforge lab k8s build|up|down|status`
and `gpuforge run`."""

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import yaml

from gpuforge import __version__, lab


def parse_extravars(values):
    """Merges -e values in order: `@file` (YAML/JSON), a JSON/YAML mapping, or `k=v k2=v2`."""
    merged = {}
    for value in values or []:
        if value.startswith("@"):
            data = yaml.safe_load(Path(value[1:]).read_text())
        elif value.lstrip().startswith("{"):
            data = yaml.safe_load(value)  # JSON is YAML
        else:
            data = {}
            for pair in shlex.split(value):
                key, sep, val = pair.partition("=")
                if not sep or not key:
                    raise ValueError(f"-e {value!r}: expected key=value, @file or a JSON object")
                data[key] = val
        if not isinstance(data, dict):
            raise ValueError(f"-e {value!r}: extra vars must be a mapping")
        merged.update(data)
    return merged


def _print_table(rows, columns):
    widths = [max(len(str(r.get(c) or "-")) for r in [dict(zip(columns, columns)), *rows]) for c in columns]
    for r in [dict(zip(columns, columns)), *rows]:
        print("  ".join(str(r.get(c) or "-").ljust(w) for c, w in zip(columns, widths)).rstrip())


def cmd_lab_image(args):
    start = time.monotonic()
    print(f"{lab.ensure_image(args.release, rebuild=args.rebuild)} "
          f"(recipe {lab.recipe_hash(args.release)}, {time.monotonic() - start:.1f} s)")
    return 0


def cmd_lab_up(args):
    inventory = Path(args.inventory).resolve() if args.inventory else lab.DEFAULT_INVENTORY
    res = lab.up(name=args.name, hosts=args.hosts, gpu_hosts=args.gpu_hosts, control_planes=args.control_planes,
                 inventory=inventory, release=args.release)
    rows = [{**h, "state": "created" if h["created"] else "reused"} for h in res["hosts"]]
    _print_table(rows, ("name", "role", "ip", "state"))
    removed = f", removed {', '.join(res['removed'])}" if res["removed"] else ""
    print(f"lab {res['name']}: {len(rows)} hosts up in {res['duration_s']:.1f} s "
          f"({len(res['created'])} created, {len(res['reused'])} reused{removed})")
    print(f"inventory: {res['inventory']}")
    return 0


def cmd_lab_down(args):
    res = lab.down(name=args.name, inventory=Path(args.inventory).resolve() if args.inventory else None)
    print(f"lab {args.name}: removed {len(res['removed'])} hosts"
          + (f", network {', '.join(res['networks'])}" if res["networks"] else "")
          + (f", inventory {res['inventory']}" if res["inventory"] else ""))
    return 0


def cmd_lab_status(args):
    rows = lab.status(args.name)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        _print_table(rows, ("name", "lab", "role", "state", "ip"))
    else:
        print("no lab hosts")
    return 0


def cmd_k8s_build(args):
    from gpuforge import k8s_harness

    start = time.monotonic()
    folder = k8s_harness.ensure_binaries()
    print(f"{folder} ({time.monotonic() - start:.1f} s)")
    return 0


def cmd_k8s_up(args):
    from gpuforge import k8s_harness

    if args.inventory and args.nodes:
        print("gpuforge lab k8s up: --inventory and --nodes exclude each other", file=sys.stderr)
        return 2
    nodes = (k8s_harness.nodes_from_inventory(args.inventory) if args.inventory
             else k8s_harness.load_node_set(args.nodes or k8s_harness.DEFAULT_NODES))
    start = time.monotonic()
    harness = k8s_harness.up(args.name, nodes=nodes, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(f"harness {args.name}: Kubernetes {harness.state['version']['KUBERNETES_VERSION']} at {harness.server}, "
          f"{len(nodes)} kwok nodes, up in {time.monotonic() - start:.1f} s")
    print(f"export KUBECONFIG={harness.kubeconfig}")
    print(f"export PATH={harness.bin_dir}:$PATH   # kubectl, helm, kubeadm")
    return 0


def cmd_k8s_down(args):
    from gpuforge import k8s_harness

    stopped = k8s_harness.down(args.name)
    print(f"harness {args.name}: " + (f"stopped {', '.join(stopped)}" if stopped else "nothing was running"))
    return 0


def cmd_k8s_status(args):
    from gpuforge import k8s_harness

    harness = k8s_harness.load(args.name)
    if harness is None:
        print(f"harness {args.name}: not started")
        return 1
    rows = [{"component": c, "pid": harness.state["pids"].get(c), "port": harness.state["ports"].get(c),
             "state": "running" if harness._alive(c) else "stopped"} for c in k8s_harness.COMPONENTS]
    _print_table(rows, ("component", "pid", "port", "state"))
    print(f"kubeconfig: {harness.kubeconfig}")
    return 0 if all(r["state"] == "running" for r in rows) else 1


def cmd_run(args):
    from gpuforge.runner import extravars_json, run_playbook

    try:
        extravars = parse_extravars(args.extra_vars)
        extravars_json(extravars)  # JSON values only: they go to ansible-playbook in a 0600 JSON file
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"gpuforge run: {exc}", file=sys.stderr)
        return 2

    def progress(line):
        print(line, file=sys.stderr, flush=True)

    summary = run_playbook(args.playbook, args.inventory, limit=args.limit, tags=args.tags,
                           skip_tags=args.skip_tags, extravars=extravars, check=args.check, diff=args.diff,
                           artifacts_dir=args.artifacts, progress=None if args.quiet else progress)
    if args.summary:
        summary.write_json(args.summary)
    if args.junit:
        summary.write_junit(args.junit)
    print(summary.table())
    return summary.exit_code


def build_parser():
    ap = argparse.ArgumentParser(prog="gpuforge", description="gpuforge lab and CI tooling")
    ap.add_argument("--version", action="version", version=f"gpuforge {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    lab_p = sub.add_parser("lab", help="lab hosts: podman containers booting systemd")
    lab_sub = lab_p.add_subparsers(dest="lab_command", required=True)
    p = lab_sub.add_parser("image", help="build or reuse the lab image")
    p.add_argument("--release", default="bookworm", choices=lab.RELEASES)
    p.add_argument("--rebuild", action="store_true", help="rebuild the tarball and re-import")
    p.set_defaults(func=cmd_lab_image)
    p = lab_sub.add_parser("up", help="start (or reuse) a lab and write its inventory")
    p.add_argument("--name", default="lab")
    p.add_argument("--hosts", type=int, default=3, help="total number of hosts (default 3)")
    p.add_argument("--gpu-hosts", type=int, default=1, help="GPU workers among them (default 1)")
    p.add_argument("--control-planes", type=int, default=1, help="control planes, odd (default 1)")
    p.add_argument("--inventory", help="inventory file to write (default inventories/lab/hosts.yml)")
    p.add_argument("--release", default="bookworm", choices=lab.RELEASES)
    p.set_defaults(func=cmd_lab_up)
    p = lab_sub.add_parser("down", help="remove a lab")
    p.add_argument("--name", default="lab")
    p.add_argument("--inventory", help="also remove this inventory file if `up` wrote it for this lab")
    p.set_defaults(func=cmd_lab_down)
    p = lab_sub.add_parser("status", help="list lab hosts")
    p.add_argument("--name", help="only this lab")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lab_status)

    k8s_p = lab_sub.add_parser("k8s", help="the Kubernetes test harness: a control plane on loopback, kwok nodes")
    k8s_sub = k8s_p.add_subparsers(dest="k8s_command", required=True)
    p = k8s_sub.add_parser("build", help="build the binaries from their Go modules (cached; no-op when current)")
    p.set_defaults(func=cmd_k8s_build)
    p = k8s_sub.add_parser("up", help="start a control plane with fake nodes; prints the kubeconfig")
    p.add_argument("--name", default="harness")
    p.add_argument("--nodes", help="node-set file (default tests/k8s/nodes.yml)")
    p.add_argument("--inventory", help="mirror this inventory: control_plane, workers, gpu_workers")
    p.set_defaults(func=cmd_k8s_up)
    p = k8s_sub.add_parser("down", help="stop it and remove its files")
    p.add_argument("--name", default="harness")
    p.set_defaults(func=cmd_k8s_down)
    p = k8s_sub.add_parser("status", help="its processes and kubeconfig")
    p.add_argument("--name", default="harness")
    p.set_defaults(func=cmd_k8s_status)

    p = sub.add_parser("run", help="run a playbook through ansible-runner")
    p.add_argument("playbook")
    p.add_argument("-i", "--inventory", required=True)
    p.add_argument("-l", "--limit")
    p.add_argument("-t", "--tags")
    p.add_argument("--skip-tags")
    p.add_argument("-e", "--extra-vars", action="append", metavar="VARS",
                   help="key=value, @file.yml or a JSON object (repeatable, merged in order); ansible-playbook "
                        "gets them in a private 0600 file, never on its command line nor in --artifacts. "
                        "Give secrets as @file: a key=value is on this command's own command line")
    p.add_argument("-C", "--check", action="store_true")
    p.add_argument("-D", "--diff", action="store_true")
    p.add_argument("--summary", metavar="PATH", help="write the JSON summary here")
    p.add_argument("--junit", metavar="PATH", help="write JUnit XML here")
    p.add_argument("--artifacts", metavar="DIR", help="keep ansible-runner's events and stdout here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_run)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except lab.LabError as exc:
        print(f"gpuforge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
