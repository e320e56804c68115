#!/usr/bin/env bash
# A Docker Engine of our own for the docker backend's tests and `npm run dev`, idempotently:
#   1. installs docker.io, debootstrap and docker-registry with apt-get (as root, Debian/Ubuntu);
#   2. starts dockerd with --iptables=false --ip6tables=false --bridge=none --ip-forward=false (the host
#      firewall and forwarding are never touched: only the `host` and `none` networks exist) and its own
#      data/exec roots and socket;
#   3. starts Debian's docker-registry on 127.0.0.1:5000 (filesystem storage) so images have manifest digests;
#   4. with --images: a base image from a Debian rootfs (debootstrap minbase bookworm + python3, numpy, nodejs;
#      the tarball is cached outside the clone), our configure/publish images built on it from
#      pod-images/Dockerfile with the legacy builder, and all of them pushed to the registry.
# Prints `KEY=VALUE` lines: DOCKER_SOCKET and, with --images, the images by digest (also written to
# $C2D_DOCKER_DIR/images.env). `--provider-images`: --images, plus the provider's and Temporal's images
# (C2D_PROVIDER_IMAGE, C2D_TEMPORAL_IMAGE; k8s/overlays/dev on a local cluster). `--podman` also starts Podman's Docker API (PODMAN_SOCKET). `--prepare` only installs the packages and builds the cached base tarball (setup);
# `--stop` stops the daemon and the registry again.
# A user with their own Docker needs none of this: set the environment's `docker.socketPath` instead.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${C2D_DOCKER_DIR:-$([ "$(id -u)" -eq 0 ] && echo /var/lib/c2d-docker || echo "$HOME/.cache/c2d/docker")}
cache=${C2D_CACHE_DIR:-$HOME/.cache/c2d}
socket="$dir/docker.sock"
registry=127.0.0.1:5000
docker_bin=/usr/bin/docker # Debian's client (another `docker` on PATH may speak a newer API)
export DOCKER_HOST="unix://$socket"

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# one run at a time (test files start and stop the engine from parallel jest workers)
mkdir -p "$dir"
# (fd 9 is closed for the daemons started below: one that inherited it would hold the lock while it runs)
exec 9>"$dir/.lock"
flock 9

if [ "${1:-}" = "--stop" ]; then
  for p in "$dir/podman.pid" "$dir/registry.pid" "$dir/docker.pid"; do
    if pid_alive "$p"; then
      pid=$(cat "$p")
      kill "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$p"
  done
  # what dockerd leaves mounted (its default network namespace)
  awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount "$m" 2>/dev/null || true; done
  exit 0
fi

if [ "$(uname -s)" != "Linux" ]; then echo "The docker backend's local engine needs Linux." >&2; exit 1; fi

need=()
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "Missing: ${need[*]}. Install them (Debian/Ubuntu: apt-get install ${need[*]}) or point the docker environment at your own engine." >&2
    exit 1
  fi
  echo "Installing ${need[*]} with apt-get..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# The base image: a Debian rootfs, no registry needed. Cached as a tarball keyed by its package list.
packages=python3,python3-numpy,nodejs,ca-certificates
base_tar="$cache/debian-bookworm-$(echo "$packages" | md5sum | cut -c1-8).tar"
base=c2d/debian-base:bookworm
build_base_tar() {
  [ -f "$base_tar" ] && return 0
  mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -1 | awk '{print $2}' || true)
  mkdir -p "$cache"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  echo "Building the base image's Debian rootfs (first time only, about a minute)..." >&2
  debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >&2
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  chmod 1777 "$rootfs/tmp"
  tar -C "$rootfs" -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$rootfs"
}

if [ "${1:-}" = "--prepare" ]; then build_base_tar; exit 0; fi

mkdir -p "$dir"
if ! pid_alive "$dir/docker.pid" || ! curl -sf --unix-socket "$socket" http://d/_ping >/dev/null 2>&1; then
  # (an engine the package's init script may have started keeps its own socket; ours is separate)
  nohup /usr/sbin/dockerd --iptables=false --ip6tables=false --bridge=none --ip-forward=false \
    --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
    --host "unix://$socket" >"$dir/dockerd.log" 2>&1 </dev/null 9>&- &
  for _ in $(seq 1 100); do
    curl -sf --unix-socket "$socket" http://d/_ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf --unix-socket "$socket" http://d/_ping >/dev/null || { echo "dockerd did not start; see $dir/dockerd.log" >&2; exit 1; }
fi

if ! pid_alive "$dir/registry.pid"; then
  mkdir -p "$dir/registry"
  cat >"$dir/registry.yml" <<EOF
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $dir/registry }, delete: { enabled: true } }
http: { addr: $registry }
EOF
  nohup docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 </dev/null 9>&- &
  echo $! >"$dir/registry.pid"
  for _ in $(seq 1 100); do curl -sf "http://$registry/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf "http://$registry/v2/" >/dev/null || { echo "docker-registry did not start; see $dir/registry.log" >&2; exit 1; }
fi
echo "DOCKER_SOCKET=$socket"

# --podman: also Podman's Docker-compatible service (runc, our own storage, the loopback registry over http)
if [ "${1:-}" = "--podman" ]; then
  if ! command -v podman >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || { echo "Missing: podman (apt-get install podman)" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman >&2
  fi
  psock="$dir/podman.sock"
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\n' >"$dir/containers.conf"
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$dir/podman-storage" "$dir/podman-run" >"$dir/storage.conf"
  printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$registry" >"$dir/registries.conf"
  export CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf" CONTAINERS_REGISTRIES_CONF="$dir/registries.conf"
  if ! pid_alive "$dir/podman.pid" || ! curl -sf --unix-socket "$psock" http://d/_ping >/dev/null 2>&1; then
    rm -f "$psock"
    nohup podman system service --time=0 "unix://$psock" >"$dir/podman.log" 2>&1 </dev/null 9>&- &
    echo $! >"$dir/podman.pid"
    for _ in $(seq 1 100); do curl -sf --unix-socket "$psock" http://d/_ping >/dev/null 2>&1 && break; sleep 0.1; done
    curl -sf --unix-socket "$psock" http://d/_ping >/dev/null || { echo "podman system service did not start; see $dir/podman.log" >&2; exit 1; }
  fi
  echo "PODMAN_SOCKET=$psock"
  exit 0
fi
[ "${1:-}" = "--images" ] || [ "${1:-}" = "--provider-images" ] || exit 0

build_base_tar
stamp="$dir/base.stamp"
if [ "$(cat "$stamp" 2>/dev/null)" != "$base_tar" ] || ! $docker_bin image inspect "$base" >/dev/null 2>&1; then
  $docker_bin import -c 'CMD ["/bin/sh"]' "$base_tar" "$base" >/dev/null
  echo "$base_tar" >"$stamp"
fi

# Our step programs, compiled by `npm run build`, go into the images as built (no npm in the base).
[ -f dist/src/entrypoints/configure-step.js ] || npm run build >&2
out="$dir/images.env"
: >"$out.tmp"
for target in configure publish; do
  # the context is exactly what the build copies (the legacy builder ignores Dockerfile.dockerignore)
  tar -c package.json package-lock.json tsconfig.json src dist/src pod-images/Dockerfile |
    DOCKER_BUILDKIT=0 $docker_bin build -q --network none -f pod-images/Dockerfile --target "$target" \
      --build-arg NODE_BASE="$base" --build-arg PREBUILT=true -t "$registry/c2d-$target:local" - >/dev/null
done
$docker_bin tag "$base" "$registry/c2d-python-numpy:bookworm"
for image in c2d-configure:local c2d-publish:local c2d-python-numpy:bookworm; do
  $docker_bin push -q "$registry/$image" >/dev/null
  digest=$($docker_bin image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$registry/$image" | grep "^$registry/" | head -1)
  key=$(echo "${image%%:*}" | tr 'a-z-' 'A-Z_')
  echo "${key}_IMAGE=$digest" >>"$out.tmp"
done
mv "$out.tmp" "$out"
cat "$out"
[ "${1:-}" = "--provider-images" ] || exit 0

# --provider-images: also the provider (API + worker: pod-images/Dockerfile's provider target, PREBUILT) on
# Node 20 (the host's node binary over the base's Debian nodejs 18), and the Temporal CLI's dev server
# (what k8s/overlays/dev runs as temporalio/temporal), both pushed; rebuilt only when their inputs change.
node_bin=$(readlink -f "$(command -v node)")
temporal_bin=$(bash tools/ensure-temporal.sh)
ctx=$(mktemp -d "$dir/provider-ctx.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
digest_of() { $docker_bin image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$1" | grep "^$registry/" | head -1; }
stamp=$( (sha256sum package-lock.json pod-images/Dockerfile "$node_bin"; find dist/src -type f | sort | xargs sha256sum) | sha256sum | cut -c1-16)
if ! $docker_bin image inspect "$registry/c2d-provider:$stamp" >/dev/null 2>&1; then
  echo "Building the provider image (production dependencies pruned from this checkout's node_modules)..." >&2
  mkdir -p "$ctx/node20" "$ctx/src"
  cp "$node_bin" "$ctx/node20/node"
  printf 'FROM %s\nCOPY node /usr/local/bin/node\n' "$base" >"$ctx/node20/Dockerfile"
  DOCKER_BUILDKIT=0 $docker_bin build -q -t c2d/node20-base:bookworm "$ctx/node20" >/dev/null
  cp -a package.json package-lock.json tsconfig.json src node_modules pod-images "$ctx/src/"
  mkdir -p "$ctx/src/dist" && cp -a dist/src "$ctx/src/dist/src"
  (cd "$ctx/src" && npm prune --omit=dev --offline --no-audit --no-fund >/dev/null 2>&1)
  tar -C "$ctx/src" -c package.json package-lock.json tsconfig.json src dist/src node_modules pod-images/Dockerfile |
    DOCKER_BUILDKIT=0 $docker_bin build -q --network none -f pod-images/Dockerfile --target provider \
      --build-arg NODE_BASE=c2d/node20-base:bookworm --build-arg PREBUILT=true -t "$registry/c2d-provider:$stamp" - >/dev/null
  $docker_bin push -q "$registry/c2d-provider:$stamp" >/dev/null
fi
# (a Go binary without cgo needs $USER to know who runs it: the server refuses to start without)
temporal_dockerfile=$(printf 'FROM %s\nCOPY temporal /usr/local/bin/temporal\nENV USER=temporal HOME=/tmp\nUSER 1000:1000\nENTRYPOINT ["temporal"]\n' "$base")
tstamp=$( (sha256sum "$temporal_bin"; echo "$temporal_dockerfile") | sha256sum | cut -c1-16)
if ! $docker_bin image inspect "$registry/c2d-temporal:$tstamp" >/dev/null 2>&1; then
  mkdir -p "$ctx/temporal"
  cp "$temporal_bin" "$ctx/temporal/temporal"
  echo "$temporal_dockerfile" >"$ctx/temporal/Dockerfile"
  DOCKER_BUILDKIT=0 $docker_bin build -q -t "$registry/c2d-temporal:$tstamp" "$ctx/temporal" >/dev/null
  $docker_bin push -q "$registry/c2d-temporal:$tstamp" >/dev/null
fi
pout="$dir/provider-images.env"
{
  echo "C2D_PROVIDER_IMAGE=$(digest_of "$registry/c2d-provider:$stamp")"
  echo "C2D_TEMPORAL_IMAGE=$(digest_of "$registry/c2d-temporal:$tstamp")"
} >"$pout"
cat "$pout"
