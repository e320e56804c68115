#!/usr/bin/env bash
# Prints the path of the Temporal Web UI server (temporalio/ui-server, MIT), built from its Go module,
# for a Temporal server that is not the dev server (`npm run temporal:cluster`): the dev server has the
# UI built in. The module carries the UI's built assets, so the binary serves the whole UI.
# Cached outside the clone in ${C2D_TOOLS_DIR:-~/.cache/c2d/tools}/temporal-ui-<version>; a second run
# only checks that it is there.
set -euo pipefail
version=${C2D_TEMPORAL_UI_VERSION:-v2.42.1}
tools=${C2D_TOOLS_DIR:-$HOME/.cache/c2d/tools}
bin="$tools/temporal-ui-$version"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "Building the Temporal Web UI server needs Go (not found). Install Go, or put a ui-server $version binary at $bin." >&2
  exit 1
fi
mkdir -p "$tools"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$bin.lock"
  flock 9
  if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/c2d-temporal-ui.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "Building the Temporal Web UI server $version into $tools (first time only; about a minute)..." >&2
GOTOOLCHAIN=auto CGO_ENABLED=0 GOBIN="$work" "$go" install -trimpath -ldflags "-s -w" "github.com/temporalio/ui-server/v2/cmd/server@$version" >&2
mv "$work/server" "$bin"
echo "Built in $(($(date +%s) - start)) s." >&2
echo "$bin"
