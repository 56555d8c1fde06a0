#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (the S3-compatible server the backup tests run
# against) from the Go module proxy, once, into a cache directory outside
# the repository, and prints the binary's path. Later runs find it there.
#
# `go install` refuses the module (its go.mod has replace directives), so
# it is built as the main module of a copy of its source. The first build
# takes about 8 minutes on 2 cores.
set -euo pipefail
version=${MERIDIAN_WEED_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}
cache=${MERIDIAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meridian}
bin=$cache/weed-$version/weed
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
dir=$(go mod download -json "github.com/seaweedfs/seaweedfs@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "weed.sh: cannot download github.com/seaweedfs/seaweedfs@$version" >&2
  exit 1
fi
work=$(mktemp -d "$cache/weed-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -R "$dir/." "$work/"
chmod -R u+w "$work"
# (-o names a file: the module has a directory called weed)
(cd "$work" && GOFLAGS=-mod=mod go build -o "$work/weed.bin" ./weed) >&2
mkdir -p "$(dirname "$bin")"
mv "$work/weed.bin" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "$bin"
