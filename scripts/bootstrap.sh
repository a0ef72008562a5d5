#!/usr/bin/env bash
# Installs everything gpuforge needs on a Debian/Ubuntu machine: podman and the
# image tools (apt), the container engine settings the lab needs, and the
# Python virtual environment (.venv) with pinned packages. Safe to re-run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

apt_pkgs=(podman runc uidmap slirp4netns fuse-overlayfs netavark aardvark-dns iptables mmdebstrap debian-archive-keyring make python3-venv gnupg openssl)
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing apt packages: ${missing[*]}"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# podman settings this kind of host needs (hybrid cgroups, low hard ulimits):
# runc not crun, cgroupfs, no default ulimits, netavark for DNS on lab networks.
conf_src=gpuforge/data/containers.conf
conf_dst=/etc/containers/containers.conf.d/50-gpuforge.conf
if ! cmp -s "$conf_src" "$conf_dst" 2>/dev/null; then
  echo "bootstrap: writing $conf_dst"
  "${sudo_cmd[@]}" install -D -m 0644 "$conf_src" "$conf_dst"
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$py" -m venv .venv
fi
stamp=.venv/.gpuforge-deps
want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Python packages (pinned)"
  .venv/bin/pip install -q --upgrade pip==24.3.1
  .venv/bin/pip install -q -c requirements/constraints.txt -e '.[test]'
  echo "$want" > "$stamp"
fi
echo "bootstrap: ready (activate with: . .venv/bin/activate)"
