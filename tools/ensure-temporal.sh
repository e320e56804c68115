#!/usr/bin/env bash
# Prints the path of a Temporal CLI (v1.5.1: dev server 1.29.1 + Web UI). Order: the tool cache,
# a `temporal` already on PATH, then a build from the Go module proxy into the cache (first time: minutes).
set -euo pipefail
version=v1.5.1
tools=${C2D_TOOLS_DIR:-$HOME/.cache/c2d/tools}
bin="$tools/temporal"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
if command -v temporal >/dev/null 2>&1; then command -v temporal; exit 0; fi
go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "No Temporal CLI found. Install Go >= 1.21 (we build it) or put the 'temporal' CLI on PATH." >&2
  exit 1
fi
mkdir -p "$tools"
echo "Building Temporal CLI $version into $tools (first time only; takes a few minutes)..." >&2
GOTOOLCHAIN=auto CGO_ENABLED=0 GOBIN="$tools" "$go" install -ldflags "-s -w" "github.com/temporalio/cli/cmd/temporal@$version" >&2
echo "$bin"
