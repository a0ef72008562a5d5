#!/usr/bin/env bash
# Fetch the upstream files of the CNIs gpuforge.cluster.cni installs into a bundle folder
#   ${GPUFORGE_CACHE:-~/.cache/gpuforge}/cni/bundle     (or the folder given as argument)
# laid out as the role expects (roles/cni/README.md, cni_bundle_dir):
#   calico/<CALICO_VERSION>/calico.yaml              manifests/calico.yaml of Calico
#   flannel/<FLANNEL_VERSION>/kube-flannel.yml       Documentation/kube-flannel.yml of Flannel
#   cilium/<CILIUM_VERSION>/cilium/                  the Helm chart install/kubernetes/cilium of Cilium
#
# The files come from the Go module proxy (`go mod download`, the Go module cache: GOMODCACHE or
# Go's default), as the Kubernetes harness binaries do (build.sh): no other download. Versions are in
# cni_versions.env. The copies are writable (the module cache is read-only) and the bundle is
# rebuilt only when it is missing or its stamp (cni_versions.env, this script) changed: a warm run
# does nothing. An air-gapped site runs this on a connected machine and copies the folder over.
# Usage: tests/k8s/cni_bundle.sh [--print-dir] [--force] [BUNDLE_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$here/cni_versions.env"

bundle=${GPUFORGE_CACHE:-$HOME/.cache/gpuforge}/cni/bundle
force=0
print=0
for arg in "$@"; do
  case $arg in
    --print-dir) print=1 ;;
    --force) force=1 ;;
    -*) echo "cni_bundle.sh: unknown argument $arg" >&2; exit 2 ;;
    *) bundle=$arg ;;
  esac
done
if [[ $print == 1 ]]; then echo "$bundle"; exit 0; fi

calico=calico/$CALICO_VERSION/calico.yaml
flannel=flannel/$FLANNEL_VERSION/kube-flannel.yml
cilium=cilium/$CILIUM_VERSION/cilium
stamp=$( { cat "$here/cni_versions.env" "$0"; } | sha256sum | cut -d' ' -f1)
# One writer at a time (test sessions and Molecule may run this together): the others wait, then
# find the bundle up to date.
mkdir -p "$(dirname "$bundle")"
exec 9>"$bundle.lock"
flock 9
if [[ $force == 0 && -f $bundle/.stamp && $(cat "$bundle/.stamp") == "$stamp" \
      && -s $bundle/$calico && -s $bundle/$flannel && -s $bundle/$cilium/Chart.yaml ]]; then
  echo "cni_bundle.sh: $bundle is up to date"
  exit 0
fi
command -v go >/dev/null || {
  echo "cni_bundle.sh: go is not installed (it fetches the files from the Go module proxy)" >&2
  exit 1
}
export GOTOOLCHAIN=local

# The module's folder in the Go module cache (downloaded when missing).
module_dir() {
  local json dir
  json=$(cd / && go mod download -json "$1") || { echo "cni_bundle.sh: go mod download $1 failed" >&2; exit 1; }
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
  [[ -n $dir && -d $dir ]] || { echo "cni_bundle.sh: no folder for $1 in: $json" >&2; exit 1; }
  echo "$dir"
}

start=$(date +%s)
tmp=$(mktemp -d "$(dirname "$bundle")/.bundle.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

src=$(module_dir "$CALICO_MODULE")
mkdir -p "$tmp/$(dirname "$calico")"
cp "$src/manifests/calico.yaml" "$tmp/$calico"
# The module version is a commit: check that its manifest is the release named.
grep -q "image: .*/calico/node:$CALICO_VERSION\$" "$tmp/$calico" \
  || { echo "cni_bundle.sh: $CALICO_MODULE manifests/calico.yaml is not Calico $CALICO_VERSION" >&2; exit 1; }

src=$(module_dir "$FLANNEL_MODULE")
mkdir -p "$tmp/$(dirname "$flannel")"
cp "$src/Documentation/kube-flannel.yml" "$tmp/$flannel"

src=$(module_dir "$CILIUM_MODULE")
mkdir -p "$tmp/$(dirname "$cilium")"
cp -R "$src/install/kubernetes/cilium" "$tmp/$cilium"
grep -q "^version: $CILIUM_VERSION\$" "$tmp/$cilium/Chart.yaml" \
  || { echo "cni_bundle.sh: $CILIUM_MODULE has not the chart $CILIUM_VERSION" >&2; exit 1; }

chmod -R u+w,go-w "$tmp"
chmod u=rwx,go=rx "$tmp"  # mktemp made it private
echo "$stamp" >"$tmp/.stamp"
rm -rf "$bundle.old"
if [[ -e $bundle ]]; then mv -T "$bundle" "$bundle.old"; fi
mv -T "$tmp" "$bundle"
rm -rf "$bundle.old"
trap - EXIT
echo "cni_bundle.sh: $bundle (Calico $CALICO_VERSION, Flannel $FLANNEL_VERSION, Cilium $CILIUM_VERSION)" \
  "in $(( $(date +%s) - start ))s"
