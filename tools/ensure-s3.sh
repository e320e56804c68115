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
source "$(dirname "$0")/lib/go-install.sh"
go_install_cached "$tools/versitygw-$version" "github.com/versity/versitygw/cmd/versitygw@$version" "the S3-compatible test server (versitygw $version, needs Go >= 1.25)" "a few minutes"
