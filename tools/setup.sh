#!/usr/bin/env bash
# Installs what the stack needs beyond npm packages, idempotently (skips what is already there):
# bubblewrap + util-linux + uidmap (the process backend's sandbox), as root also iproute2 + nftables (network
# access for algorithms whose datasets allow it; they need a root worker anyway), and the Temporal CLI.
# With --k8s (npm test, npm run bench) also the local Kubernetes control plane's binaries (the kubernetes
# backend's tests) and, as root, a real node's packages (containerd, runc, CNI plugins, ipset, iptables);
# `npm run dev` does not need them. With --docker (or --k8s), as root on Debian/Ubuntu, also
# the docker backend's engine packages and its cached base image (tools/ensure-docker.sh --prepare).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)" != "Linux" ]; then
  echo "The process backend needs Linux with bubblewrap (user namespaces) and cgroups." >&2
  exit 1
fi

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v prlimit >/dev/null 2>&1 || need+=(util-linux)
# a worker that is not root runs each job as one of its user's subordinate ids (newuidmap/newgidmap)
command -v newuidmap >/dev/null 2>&1 || need+=(uidmap)
# the local Kubernetes control plane makes its certificates with the openssl CLI
[ "${1:-}" = "--k8s" ] && { command -v openssl >/dev/null 2>&1 || need+=(openssl); }
if [ "$(id -u)" -eq 0 ]; then
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v nft >/dev/null 2>&1 || need+=(nftables)
  # a real Kubernetes node (tools/k8s-node.ts): containerd + runc, the CNI plugins, kube-router's iptables-nft and ipset
  if [ "${1:-}" = "--k8s" ]; then
    command -v containerd >/dev/null 2>&1 || need+=(containerd)
    command -v runc >/dev/null 2>&1 || need+=(runc)
    [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
    command -v ipset >/dev/null 2>&1 || need+=(ipset)
    command -v iptables-save >/dev/null 2>&1 || need+=(iptables)
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "Missing: ${need[*]}. Install them with your package manager (Debian/Ubuntu: apt-get install ${need[*]})." >&2
    exit 1
  fi
  echo "Installing ${need[*]} with apt-get..." >&2
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine's package lists may be empty or stale.
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# An ordinary user's worker needs the provider's parent cgroup handed to it (memory, CPU and process limits).
if [ "$(id -u)" -ne 0 ]; then
  cg=${C2D_CGROUP_ROOT:-/sys/fs/cgroup}
  parent=$cg/c2d
  [ -f "$cg/cgroup.controllers" ] || parent=$cg/memory/c2d
  if ! grep -qE "^($(id -un)|$(id -u)):" /etc/subuid 2>/dev/null || ! grep -qE "^($(id -un)|$(id -u)):" /etc/subgid 2>/dev/null; then
    echo "note: jobs run as this user's subordinate ids, and it has none; as root run: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $(id -un)" >&2
  fi
  if [ ! -w "$parent" ]; then
    echo "note: jobs need cgroups this user may create; once per boot run: sudo bash tools/delegate-cgroups.sh $(id -un)" >&2
  fi
fi
bash tools/ensure-temporal.sh >/dev/null
# First time: builds Kubernetes and etcd from Go modules (many minutes); then cached.
if [ "${1:-}" = "--k8s" ] && ! bash tools/ensure-k8s.sh >/dev/null; then
  echo "warning: no local Kubernetes binaries: the tests in test/k8s and npm run k8s:up need them (see above)." >&2
fi
# The docker backend's tests start their own engine from these (tools/ensure-docker.sh); first time ≈ 1 min.
case " $* " in
  *" --docker "* | *" --k8s "*)
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      bash tools/ensure-docker.sh --prepare || echo "warning: no Docker Engine packages: the tests in test/docker need them (see above)." >&2
    else
      echo "note: the docker backend's tests need root on Debian/Ubuntu (Docker Engine, debootstrap, docker-registry)." >&2
    fi
    ;;
esac
