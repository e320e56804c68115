# Sourced by the tools/ensure-*.sh scripts that build one Go program into the cache outside the clone.
# go_install_cached <bin> <module/cmd@version> <what> <how long>
#   Prints <bin> once it exists: built with `go install` the first time (under a lock, so two runs at
#   once build it once), found there every time after.
go_install_cached() {
  local bin=$1 pkg=$2 what=$3 takes=$4
  if [ -x "$bin" ]; then echo "$bin"; return 0; fi
  local go
  go=$(command -v go || true)
  [ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
  if [ -z "$go" ]; then
    echo "Building $what needs Go (not found). Install Go, or put a built binary at $bin." >&2
    return 1
  fi
  mkdir -p "$(dirname "$bin")"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$bin.lock"
    flock 9
    if [ -x "$bin" ]; then echo "$bin"; return 0; fi
  fi
  local work start
  work=$(mktemp -d "${TMPDIR:-/tmp}/c2d-go-install.XXXXXX")
  start=$(date +%s)
  echo "Building $what into $(dirname "$bin") (first time only; $takes)..." >&2
  if ! GOTOOLCHAIN=auto CGO_ENABLED=0 GOBIN="$work" "$go" install -trimpath -ldflags "-s -w" "$pkg" >&2; then
    rm -rf "$work"
    return 1
  fi
  mv "$work"/* "$bin"
  rm -rf "$work"
  echo "Built in $(($(date +%s) - start)) s." >&2
  echo "$bin"
}
