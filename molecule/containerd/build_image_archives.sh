#!/usr/bin/env bash
# The offline image folder of molecule/containerd's air-gapped import, built locally (FROM scratch, one
# small file each; no registry), cached in ${GPUFORGE_CACHE:-~/.cache/gpuforge}/molecule-containerd/images:
#   two.tar     localhost/gpuforge-test/alpha:1 and localhost/gpuforge-test/beta:1 (podman save -m)
#   one.tar     localhost/gpuforge-test/gamma:1
#   SHA256SUMS  as sha256sum writes it
# Prints the folder on its last line.
set -euo pipefail
dir=${GPUFORGE_CACHE:-$HOME/.cache/gpuforge}/molecule-containerd/images
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [[ ! -s $dir/SHA256SUMS ]]; then
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  for n in alpha beta gamma; do
    echo "gpuforge test image $n" >"$ctx/$n.txt"
    printf 'FROM scratch\nCOPY %s.txt /%s.txt\n' "$n" "$n" >"$ctx/Containerfile.$n"
    podman build -q --pull=never --timestamp 0 -f "$ctx/Containerfile.$n" -t "localhost/gpuforge-test/$n:1" "$ctx" >/dev/null
  done
  podman save -q -m --format docker-archive -o "$ctx/two.tar" localhost/gpuforge-test/alpha:1 localhost/gpuforge-test/beta:1
  podman save -q --format docker-archive -o "$ctx/one.tar" localhost/gpuforge-test/gamma:1
  podman rmi -f localhost/gpuforge-test/alpha:1 localhost/gpuforge-test/beta:1 localhost/gpuforge-test/gamma:1 >/dev/null
  (cd "$ctx" && sha256sum two.tar one.tar >SHA256SUMS.tmp)
  mv -f "$ctx/two.tar" "$ctx/one.tar" "$dir/"
  mv -f "$ctx/SHA256SUMS.tmp" "$dir/SHA256SUMS"
fi
echo "$dir"
