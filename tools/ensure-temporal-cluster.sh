#!/usr/bin/env bash
# Obtains what `npm run temporal:cluster` (tools/temporal-cluster.ts) runs and prints the directory that
# holds it: the Temporal server and its SQL schema tool, built from Go modules (the server version the
# CLI's dev server bundles, so histories and features match), plus the PostgreSQL schema files that ship
# inside the server module. PostgreSQL itself comes from Debian's packages (installed here when missing
# and we are root; otherwise we say what to install).
# Cached outside the clone in ${C2D_TOOLS_DIR:-~/.cache/c2d/tools}/temporal-cluster/<version>/; a second
# run only checks that the files are there.
set -euo pipefail

version=${C2D_TEMPORAL_SERVER_VERSION:-v1.29.1}
tools=${C2D_TOOLS_DIR:-$HOME/.cache/c2d/tools}
dir="$tools/temporal-cluster/$version"

have_postgres() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1
}
have_all() {
  [ -x "$dir/temporal-server" ] && [ -x "$dir/temporal-sql-tool" ] && [ -f "$dir/schema/postgresql/v12/temporal/schema.sql" ] \
    && [ -f "$dir/schema/postgresql/v12/visibility/schema.sql" ]
}

if ! have_postgres; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing PostgreSQL from the Debian packages..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2 \
      || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2; }
  else
    echo "PostgreSQL (initdb, pg_ctl, postgres) is missing: install it, e.g. 'sudo apt-get install postgresql'." >&2
    exit 1
  fi
fi

if have_all; then echo "$dir"; exit 0; fi

go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "Building the Temporal server needs Go >= 1.23 (not found). Install Go, or put temporal-server," >&2
  echo "temporal-sql-tool and the server's schema/ directory in $dir." >&2
  exit 1
fi
export GOTOOLCHAIN=auto CGO_ENABLED=0
mkdir -p "$dir"
# One build at a time (parallel test workers on a fresh machine): wait for the other, then reuse its result.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/.lock"
  flock 9
  if have_all; then echo "$dir"; exit 0; fi
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/c2d-temporal-cluster.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "Building Temporal server $version and temporal-sql-tool into $dir (first time only; several minutes)..." >&2
GOBIN="$work/bin" "$go" install -trimpath -ldflags "-s -w" \
  "go.temporal.io/server/cmd/server@$version" "go.temporal.io/server/cmd/tools/sql@$version" >&2
# The schema files are part of the module source, now in Go's module cache (read-only there: copy them).
src=$("$go" mod download -json "go.temporal.io/server@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
rm -rf "$dir/schema"
mkdir -p "$dir/schema/postgresql"
cp -R "$src/schema/postgresql/v12" "$dir/schema/postgresql/"
chmod -R u+w,a+rX "$dir/schema"
mv "$work/bin/server" "$dir/temporal-server"
mv "$work/bin/sql" "$dir/temporal-sql-tool"
echo "Built in $(($(date +%s) - start)) s." >&2
echo "$dir"
