#!/usr/bin/env bash
# Obtains the binaries of a local Kubernetes control plane (tests, `npm run k8s:up`) and prints the
# directory that holds them: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (Kubernetes
# built from Go modules), etcd 3.5 (built from Go modules), kwok (fake nodes and pod phases), and for a
# real node (tools/k8s-node.ts): kubelet, kube-proxy (Services, nftables mode), CoreDNS (cluster DNS),
# kube-router (its NetworkPolicy firewall) and a pause program.
# Cached outside the clone in ${C2D_TOOLS_DIR:-~/.cache/c2d/tools}/k8s/<version>/; a second run reuses them.
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces ~30 staging modules with ./staging/...),
# so we build it from a throw-away wrapper module that requires k8s.io/kubernetes vX.Y.Z and replaces each
# staging module with its published v0.Y.Z. etcd likewise gets a wrapper module (a two-line main that
# calls etcdmain.Main, which is what etcd's own main.go does). First build: many minutes, several hundred
# MB of modules (in Go's module cache, also outside the clone).
set -euo pipefail

K8S_VERSION=${C2D_K8S_VERSION:-v1.34.4}
ETCD_VERSION=v3.5.21
KWOK_VERSION=v0.7.0
KUBE_ROUTER_VERSION=v2.1.0
COREDNS_VERSION=v1.12.4

tools=${C2D_TOOLS_DIR:-$HOME/.cache/c2d/tools}
dir="$tools/k8s/$K8S_VERSION"
kube_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
bins=("${kube_bins[@]}" etcd kwok kube-router coredns pause)

have_all() {
  for b in "${bins[@]}"; do [ -x "$dir/$b" ] || return 1; done
}
if have_all; then echo "$dir"; exit 0; fi

go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "Building the local Kubernetes control plane needs Go >= 1.24 (not found). Install Go, or put" >&2
  echo "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd and kwok in $dir." >&2
  exit 1
fi
export GOTOOLCHAIN=auto CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$dir"
# One build at a time (parallel test workers on a fresh machine): wait for the other, then reuse its result.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/.lock"
  flock 9
  if have_all; then echo "$dir"; exit 0; fi
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/c2d-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

# --- Kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet (those missing) ---
missing=()
for b in "${kube_bins[@]}"; do [ -x "$dir/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Building Kubernetes $K8S_VERSION ${missing[*]} into $dir (first time only; many minutes)..." >&2
  staging=${K8S_VERSION/v1./v0.}
  mkdir -p "$work/kube" && cd "$work/kube"
  "$go" mod init c2d.local/kube-build >/dev/null 2>&1
  # The staging modules to replace are exactly those k8s.io/kubernetes's own go.mod replaces with ./staging.
  modfile=$("$go" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  "$go" mod edit -require "k8s.io/kubernetes@$K8S_VERSION"
  for m in $(sed -n 's#^\s*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$modfile"); do
    "$go" mod edit -replace "$m=$m@$staging"
  done
  # Keep the rest of k8s.io/kubernetes's requirements (and its non-staging replaces) as it pins them.
  sed -n 's#^\s*\([^ ]*\) => \([^ .][^ ]*\) \(v[^ ]*\)$#\1=\2@\3#p' "$modfile" | while read -r r; do
    "$go" mod edit -replace "$r"
  done
  pkgs=("${missing[@]/#/k8s.io/kubernetes/cmd/}")
  # Pin the version on each (a bare package path would mean @upgrade: the newest Kubernetes).
  "$go" get "${pkgs[@]/%/@$K8S_VERSION}" >&2
  major=${K8S_VERSION#v}; major=${major%%.*}
  minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ld="$ld -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  "$go" build -trimpath -ldflags "$ld" -o "$work/bin/" "${pkgs[@]}" >&2
  for b in "${missing[@]}"; do mv "$work/bin/$b" "$dir/$b"; done
fi

# --- etcd 3.5 ---
if [ ! -x "$dir/etcd" ]; then
  echo "Building etcd $ETCD_VERSION into $dir..." >&2
  mkdir -p "$work/etcd" && cd "$work/etcd"
  "$go" mod init c2d.local/etcd-build >/dev/null 2>&1
  cat >main.go <<'EOF'
// etcd's own main.go, in a module of ours (etcd's root module has replace directives).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  "$go" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  "$go" build -trimpath -ldflags "-s -w" -o "$dir/etcd" . >&2
fi

# --- kwok ---
if [ ! -x "$dir/kwok" ]; then
  echo "Building kwok $KWOK_VERSION into $dir..." >&2
  GOBIN="$dir" "$go" install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
fi

# --- kube-router: the real node's NetworkPolicy enforcer (firewall only; it drives iptables-nft and ipset) ---
if [ ! -x "$dir/kube-router" ]; then
  echo "Building kube-router $KUBE_ROUTER_VERSION into $dir..." >&2
  GOBIN="$dir" "$go" install -trimpath -ldflags "-s -w" "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION" >&2
fi

# --- CoreDNS: the real node's cluster DNS (Service names), built with its default plugins ---
if [ ! -x "$dir/coredns" ]; then
  echo "Building CoreDNS $COREDNS_VERSION into $dir..." >&2
  GOBIN="$dir" "$go" install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" >&2
fi

# --- pause: the sandbox container of each real pod (holds its namespaces, reaps the zombies it inherits) ---
if [ ! -x "$dir/pause" ]; then
  mkdir -p "$work/pause" && cd "$work/pause"
  "$go" mod init c2d.local/pause >/dev/null 2>&1
  cat >main.go <<'EOF'
// The pod sandbox's process: waits for SIGTERM/SIGINT and reaps the zombies it inherits as PID 1.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			if pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
EOF
  "$go" build -trimpath -ldflags "-s -w" -o "$dir/pause" . >&2
fi

echo "Kubernetes tools ready in $(( $(date +%s) - start )) s." >&2
have_all
echo "$dir"
