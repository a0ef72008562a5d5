#!/usr/bin/env bash
# Builds a containerd release archive the way upstream lays it out
# (containerd-<version>-linux-<arch>.tar.gz holding bin/containerd, bin/containerd-shim-runc-v2 and
# bin/ctr) from containerd's Go module, once for every test that needs containerd 2.x: the offline
# artifact folder of the containerd scenario, and the containerd of the nvidia_container_toolkit
# scenario's host 3 (release downloads cannot be reached here, the Go module proxy can). Reproducible (fixed mtime
# and owner); cached under ${GPUFORGE_CACHE:-~/.cache/gpuforge}/molecule-containerd. Prints the
# folder on its last line and the archive's SHA-256 on the line before.
set -euo pipefail
# shellcheck source=tests/builds/go_env.sh
. "$(dirname "$0")/go_env.sh"

CONTAINERD_VERSION=2.2.9
CACHE=${GPUFORGE_CACHE:-$HOME/.cache/gpuforge}/molecule-containerd
ARCH=$(go env GOARCH)
archive=$CACHE/dist/containerd-$CONTAINERD_VERSION-linux-$ARCH.tar.gz

mkdir -p "$CACHE/dist"
exec 9>"$CACHE/.lock"
flock 9
command -v go >/dev/null || { echo "go is needed to build containerd $CONTAINERD_VERSION" >&2; exit 1; }

if [ ! -s "$archive" ]; then
  root=$(mktemp -d)
  mkdir -p "$root/bin"
  # One go command for the three: the shared packages compile once, the links run side by side.
  (cd "$CACHE" && GOBIN=$root/bin CGO_ENABLED=0 \
    go install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd@v$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@v$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@v$CONTAINERD_VERSION") >&2
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf - bin | gzip -9n > "$archive.tmp"
  mv "$archive.tmp" "$archive"
  rm -rf "$root"
fi
sha256sum "$archive" | cut -d' ' -f1
echo "$CACHE/dist"
