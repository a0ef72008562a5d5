#!/usr/bin/env bash
# Build the Kubernetes test harness binaries from their Go modules, into
#   ${GPUFORGE_K8S_CACHE:-~/.cache/gpuforge/k8s}/<kubernetes version>/bin
# kube-apiserver, kube-controller-manager, kube-scheduler, kubeadm, kubectl, kubelet (k8s.io/kubernetes),
# etcd (go.etcd.io/etcd/server/v3), helm (helm.sh/helm/v3) and kwok (sigs.k8s.io/kwok).
#
# Each group lives in its own wrapper module (tests/k8s/modules/<group>/go.mod, go.sum committed) so
# their dependency versions never clash. A group is rebuilt only when its binaries are missing
# or its stamp (versions, go.mod, go.sum, flags) changed: a warm run does nothing.
# Usage: tests/k8s/build.sh [--print-bin-dir] [--force]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$here/versions.env"

cache_root=${GPUFORGE_K8S_CACHE:-$HOME/.cache/gpuforge/k8s}
bin_dir=$cache_root/$KUBERNETES_VERSION/bin
force=0
for arg in "$@"; do
  case $arg in
    --print-bin-dir) echo "$bin_dir"; exit 0 ;;
    --force) force=1 ;;
    *) echo "build.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
command -v go >/dev/null || { echo "build.sh: go is not installed (Go >= 1.26 is needed)" >&2; exit 1; }
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [[ ! $go_minor =~ ^[0-9]+$ ]] || (( go_minor < 26 )); then
  echo "build.sh: $(go env GOVERSION) is too old: kwok $KWOK_VERSION and Kubernetes $KUBERNETES_VERSION need Go >= 1.26" >&2
  exit 1
fi
mkdir -p "$bin_dir"

# The go directive is 1.26: never let the go command fetch another toolchain (go_env.sh).
# shellcheck source=tests/builds/go_env.sh
. "$here/../builds/go_env.sh"
export CGO_ENABLED=0

k8s_minor=${KUBERNETES_VERSION#v1.}
k8s_minor=${k8s_minor%%.*}
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# group | binaries | packages | ldflags | tags
build_group() {
  local group=$1 bins=$2 pkgs=$3 ldflags=$4 tags=$5
  local stamp_file=$bin_dir/.stamp-$group stamp missing=0 b
  stamp=$( { cat "$here/versions.env" "$here/modules/$group/go.mod" "$here/modules/$group/go.sum"; \
             echo "$ldflags|$tags|$(go env GOVERSION)"; } | sha256sum | cut -d' ' -f1)
  for b in $bins; do [[ -x $bin_dir/$b ]] || missing=1; done
  if [[ $force == 0 && $missing == 0 && -f $stamp_file && $(cat "$stamp_file") == "$stamp" ]]; then
    echo "build.sh: $group is up to date ($bins)"
    return 0
  fi
  local tmp start
  tmp=$(mktemp -d "$bin_dir/.build-$group.XXXXXX")
  start=$(date +%s)
  echo "build.sh: building $group ($bins) ..."
  # One package: name the output (etcd's main package is its module root, .../server/v3).
  local out=$tmp/
  [[ $pkgs == *" "* ]] || out=$tmp/$bins
  # shellcheck disable=SC2086 # pkgs is a word list on purpose
  (cd "$here/modules/$group" && go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$out" $pkgs)
  for b in $bins; do
    [[ -x $tmp/$b ]] || { echo "build.sh: $group did not produce $b" >&2; exit 1; }
    mv -f "$tmp/$b" "$bin_dir/$b"
  done
  rm -rf "$tmp"
  echo "$stamp" >"$stamp_file"
  echo "build.sh: built $group in $(( $(date +%s) - start ))s"
}

total=$(date +%s)
build_group etcd "etcd" "go.etcd.io/etcd/server/v3" \
  "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" ""
build_group kwok "kwok" "sigs.k8s.io/kwok/cmd/kwok" \
  "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" ""
# kwok v0.8 has no built-in stages: the harness passes its default node and pod stages
# (kustomize/stage in the kwok module) as kwok's configuration.
stages=$cache_root/$KUBERNETES_VERSION/kwok-stages.yaml
if [[ $force == 1 || ! -s $stages || $stages -ot $bin_dir/kwok ]]; then
  kwok_src=$(cd "$here/modules/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    cat "$kwok_src/kustomize/stage/$f"
  done >"$stages.tmp"
  mv -f "$stages.tmp" "$stages"
fi
build_group helm "helm" "helm.sh/helm/v3/cmd/helm" \
  "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" ""
build_group kubernetes "kube-apiserver kube-controller-manager kube-scheduler kubeadm kubectl kubelet" \
  "k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet" \
  "$k8s_ldflags" "selinux,notest,grpcnotrace"
# The node binaries' checksums, as the release publishes one per binary: what an offline site's folder
# carries next to them (the lab inventory's kubernetes_node_binaries_sha256 reads this file).
sums=$bin_dir/SHA256SUMS
if [[ $force == 1 || ! -s $sums || $sums -ot $bin_dir/kubeadm || $sums -ot $bin_dir/kubelet || $sums -ot $bin_dir/kubectl ]]; then
  (cd "$bin_dir" && sha256sum kubeadm kubelet kubectl) >"$sums.tmp"
  mv -f "$sums.tmp" "$sums"
fi
echo "build.sh: binaries in $bin_dir ($(( $(date +%s) - total ))s)"
