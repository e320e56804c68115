#!/usr/bin/env bash
# Prints the path of an S3-compatible server for tests and local clusters: the Versity S3 Gateway
# (versitygw, Apache-2.0) serving a plain directory (its `posix` backend), built from its Go module.
# Why it: one static Go binary that `go install` accepts (no `replace` in its go.mod), a ~2-minute build,
# real S3 semantics we rely on (SigV4 and presigned URLs, Range GETs, multipart, bucket lifecycle
# configuration stored) and no state outside the directory it serves. MinIO's module no longer installs
# with `go install` and SeaweedFS is a much larger build.
# Cached outside the clone in ${C2D_TOOLS_DIR:-~/.cache/c2d/tools}/versitygw-<version>; a second run
# only checks that it is there.
set -euo pipefail
version=${C2D_VERSITYGW_VERSION:-v1.8.0}
tools=${C2D_TOOLS_DIR:-$HOME/.cache/c2d/tools}
bin="$tools/versitygw-$version"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "Building the S3-compatible test server (versitygw) needs Go >= 1.25 (not found). Install Go, or put" >&2
  echo "a versitygw $version binary at $bin." >&2
  exit 1
fi
mkdir -p "$tools"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$bin.lock"
  flock 9
  if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/c2d-versitygw.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "Building versitygw $version into $tools (first time only; a few minutes)..." >&2
GOTOOLCHAIN=auto CGO_ENABLED=0 GOBIN="$work" "$go" install -trimpath -ldflags "-s -w" "github.com/versity/versitygw/cmd/versitygw@$version" >&2
mv "$work/versitygw" "$bin"
echo "Built in $(($(date +%s) - start)) s." >&2
echo "$bin"
