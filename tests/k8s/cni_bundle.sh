#!/usr/bin/env bash
# Lay out the bundle of upstream CNI files gpuforge.cluster.cni installs from (cni_bundle_dir):
#   ${GPUFORGE_CACHE:-~/.cache/gpuforge}/cni/bundle     (or the folder given as argument)
# in upstream's own layout, the one the role reads (roles/cni/README.md, "The bundle"):
#   calico/<CALICO_VERSION>/manifests/calico.yaml         projectcalico/calico at the tag
#   flannel/<FLANNEL_VERSION>/Documentation/kube-flannel.yml   flannel-io/flannel at the tag
#   cilium/<CILIUM_VERSION>/cilium-<CILIUM_VERSION>.tgz    the packaged chart cilium publishes
#   SHA256SUMS                                            their SHA-256, which the role checks
#
# The files are copied from the project's pinned upstream files (shared/charts/cni, found by
# gpuforge.shared_inputs), each checked against the SHA256SUMS there first: no download. Versions are
# in cni_versions.env. The bundle is rebuilt only when it is missing or its stamp (cni_versions.env,
# this script, the source's SHA256SUMS) changed: a warm run does nothing. An air-gapped site copies
# such a folder to its controller (or points cni_bundle_dir at one).
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

files=("calico/$CALICO_VERSION/manifests/calico.yaml"
       "flannel/$FLANNEL_VERSION/Documentation/kube-flannel.yml"
       "cilium/$CILIUM_VERSION/cilium-$CILIUM_VERSION.tgz")
src=${GPUFORGE_CNI_SOURCE:-}
if [[ -z $src ]]; then
  src=$(cd "$here/../.." && python3 -c 'from gpuforge.shared_inputs import find_shared_dir; print(find_shared_dir() / "charts" / "cni")') \
    || { echo "cni_bundle.sh: the pinned upstream files (shared/charts/cni) were not found" >&2; exit 1; }
fi
[[ -s $src/SHA256SUMS ]] || { echo "cni_bundle.sh: $src has no SHA256SUMS" >&2; exit 1; }
stamp=$( { cat "$here/cni_versions.env" "$0" "$src/SHA256SUMS"; } | sha256sum | cut -d' ' -f1)
# One writer at a time (test sessions and Molecule may run this together): the others wait, then
# find the bundle up to date.
mkdir -p "$(dirname "$bundle")"
exec 9>"$bundle.lock"
flock 9
up_to_date=1
for f in "${files[@]}"; do [[ -s $bundle/$f ]] || up_to_date=0; done
if [[ $force == 0 && $up_to_date == 1 && -f $bundle/.stamp && $(cat "$bundle/.stamp") == "$stamp" ]]; then
  echo "cni_bundle.sh: $bundle is up to date"
  exit 0
fi

tmp=$(mktemp -d "$(dirname "$bundle")/.bundle.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for f in "${files[@]}"; do
  sum=$(awk -v f="./$f" '$2 == f || $2 == substr(f, 3) {print $1; exit}' "$src/SHA256SUMS")
  [[ -n $sum ]] || { echo "cni_bundle.sh: $src/SHA256SUMS does not list $f (is that release pinned?)" >&2; exit 1; }
  [[ -s $src/$f ]] || { echo "cni_bundle.sh: $src/$f is missing" >&2; exit 1; }
  [[ $(sha256sum "$src/$f" | cut -d' ' -f1) == "$sum" ]] \
    || { echo "cni_bundle.sh: $src/$f does not match its SHA-256 in $src/SHA256SUMS" >&2; exit 1; }
  mkdir -p "$tmp/$(dirname "$f")"
  cp "$src/$f" "$tmp/$f"
  echo "$sum  ./$f" >>"$tmp/SHA256SUMS"
done
chmod -R u+w,go-w "$tmp"
chmod u=rwx,go=rx "$tmp"  # mktemp made it private
echo "$stamp" >"$tmp/.stamp"
rm -rf "$bundle.old"
if [[ -e $bundle ]]; then mv -T "$bundle" "$bundle.old"; fi
mv -T "$tmp" "$bundle"
rm -rf "$bundle.old"
trap - EXIT
echo "cni_bundle.sh: $bundle (Calico $CALICO_VERSION, Flannel $FLANNEL_VERSION, Cilium $CILIUM_VERSION) from $src"
