#!/usr/bin/env bash
# Builds what host 3 of the nvidia_container_toolkit scenario needs, from Go modules (the
# Go module proxy is the only source reachable here; NVIDIA's repositories are not):
#   containerd 2.x (github.com/containerd/containerd/v2/cmd/containerd), to exercise the
#     containerd 2 configuration schema on a running daemon;
#   nvidia-container-toolkit-base and nvidia-container-toolkit .deb packages holding the
#     binaries of github.com/NVIDIA/nvidia-container-toolkit, for install_mode package_dir;
#   a signed flat apt repository holding them, laid out like NVIDIA's (stable/deb/<arch>/,
#     key in gpgkey), standing in for an air-gapped site's mirror (install_mode repo).
# Everything is cached under ${GPUFORGE_CACHE:-~/.cache/gpuforge}/molecule-nvidia_container_toolkit;
# a second run only prints the folder. Prints the cache folder on its last line.
set -euo pipefail
# shellcheck source=tests/builds/go_env.sh
. "$(dirname "$0")/../../tests/builds/go_env.sh"

CONTAINERD_VERSION=2.2.9
TOOLKIT_VERSION=1.20.2
PACKAGE_REVISION=1
CACHE=${GPUFORGE_CACHE:-$HOME/.cache/gpuforge}/molecule-nvidia_container_toolkit
ARCH=$(dpkg --print-architecture)

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

command -v go >/dev/null || { echo "go is needed to build the lab artifacts (containerd $CONTAINERD_VERSION, toolkit $TOOLKIT_VERSION)" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "dpkg-deb is needed to package the toolkit" >&2; exit 1; }

# containerd 2.x: the binary of the release archive the containerd scenario installs (built once,
# tests/builds/containerd_release.sh, for both scenarios).
containerd_dir=$CACHE/containerd-$CONTAINERD_VERSION
if [ ! -x "$containerd_dir/containerd" ]; then
  release=$(bash "$(dirname "$0")/../../tests/builds/containerd_release.sh" | tail -1)
  mkdir -p "$containerd_dir"
  tar -xzf "$release/containerd-$CONTAINERD_VERSION-linux-$(go env GOARCH).tar.gz" -C "$containerd_dir" \
    --strip-components=1 bin/containerd
fi

toolkit_bin=$CACHE/nvidia-container-toolkit-$TOOLKIT_VERSION/bin
base_cmds=(nvidia-ctk nvidia-container-runtime nvidia-container-runtime.cdi nvidia-container-runtime.legacy nvidia-cdi-hook)
hook_cmds=(nvidia-container-runtime-hook)
missing=()
for cmd in "${base_cmds[@]}" "${hook_cmds[@]}"; do
  [ -x "$toolkit_bin/$cmd" ] || missing+=("github.com/NVIDIA/nvidia-container-toolkit/cmd/$cmd@v$TOOLKIT_VERSION")
done
if [ ${#missing[@]} -gt 0 ]; then
  # One go command for all of them: the shared packages compile once, the links run side by side.
  mkdir -p "$toolkit_bin"
  (cd "$CACHE" && GOBIN=$toolkit_bin \
    go install -trimpath \
    -ldflags "-s -w -X github.com/NVIDIA/nvidia-container-toolkit/internal/info.version=$TOOLKIT_VERSION" \
    "${missing[@]}") >&2
fi

debs=$CACHE/debs
version=$TOOLKIT_VERSION-$PACKAGE_REVISION
build_deb() { # name depends cmd...
  local name=$1 depends=$2; shift 2
  local out=$debs/${name}_${version}_${ARCH}.deb
  [ -f "$out" ] && return 0
  local root
  root=$(mktemp -d)
  mkdir -p "$root/DEBIAN" "$root/usr/bin"
  for cmd in "$@"; do install -m 0755 "$toolkit_bin/$cmd" "$root/usr/bin/$cmd"; done
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: $ARCH"
    echo "Maintainer: gpuforge lab <lab@gpuforge.invalid>"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Description: $name $TOOLKIT_VERSION (gpuforge lab build)"
    echo " Binaries of github.com/NVIDIA/nvidia-container-toolkit v$TOOLKIT_VERSION built from the Go"
    echo " module proxy, packaged under NVIDIA's package name for the Molecule scenario."
  } > "$root/DEBIAN/control"
  mkdir -p "$debs"
  SOURCE_DATE_EPOCH=0 dpkg-deb --root-owner-group --build "$root" "$out.tmp" >&2
  mv "$out.tmp" "$out"
  rm -rf "$root"
}
build_deb nvidia-container-toolkit-base "" "${base_cmds[@]}"
build_deb nvidia-container-toolkit "nvidia-container-toolkit-base (= $version)" "${hook_cmds[@]}"

# The mirror: Packages, Release and InRelease signed by a key made for it.
mirror=$CACHE/mirror
repo=$mirror/stable/deb/$ARCH
if [ ! -f "$repo/InRelease" ] || [ "$debs" -nt "$repo/InRelease" ]; then
  rm -rf "$mirror"
  mkdir -p "$repo"
  cp "$debs"/*.deb "$repo/"
  export GNUPGHOME=$CACHE/gnupg
  if [ ! -f "$GNUPGHOME/.made" ]; then
    rm -rf "$GNUPGHOME"
    mkdir -m 700 -p "$GNUPGHOME"
    gpg --batch --quiet --passphrase '' --quick-gen-key "gpuforge lab mirror <lab@gpuforge.invalid>" ed25519 sign never >&2
    touch "$GNUPGHOME/.made"
  fi
  gpg --batch --quiet --armor --export > "$mirror/gpgkey"
  (
    cd "$repo"
    dpkg-scanpackages --multiversion . > Packages 2>/dev/null
    gzip -9nkf Packages
    {
      echo "Origin: gpuforge lab mirror"
      echo "Label: nvidia-container-toolkit"
      echo "Architectures: $ARCH"
      echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
      echo "SHA256:"
      for f in Packages Packages.gz; do
        echo " $(sha256sum "$f" | cut -d' ' -f1) $(stat -c %s "$f") $f"
      done
    } > Release
    gpg --batch --quiet --yes --clearsign --output InRelease Release
  )
fi

echo "$CACHE"
