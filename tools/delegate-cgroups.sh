#!/usr/bin/env bash
# Lets a worker that runs as an ordinary user create its job cgroups (memory, CPU and process limits):
# creates the provider's parent cgroup `c2d` and hands it to that user. Run it as root, once per boot
# (cgroups live in memory):   sudo bash tools/delegate-cgroups.sh "$USER"
# A worker that runs as root needs none of this.
set -euo pipefail
user=${1:-}
root=${C2D_CGROUP_ROOT:-/sys/fs/cgroup}
if [ -z "$user" ]; then
  echo "usage: sudo bash tools/delegate-cgroups.sh USER" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "run it as root: sudo bash tools/delegate-cgroups.sh $user" >&2
  exit 1
fi
id "$user" >/dev/null
if [ -f "$root/cgroup.controllers" ]; then
  # cgroup v2: the worker must also run inside a cgroup the user owns (moving a step into c2d/… needs
  # write access to the common ancestor's cgroup.procs), e.g. under `systemd-run --user --scope -p Delegate=yes`.
  for c in memory cpu pids; do grep -qw "$c" "$root/cgroup.subtree_control" || echo "+$c" > "$root/cgroup.subtree_control"; done
  mkdir -p "$root/c2d"
  for c in memory cpu pids; do grep -qw "$c" "$root/c2d/cgroup.subtree_control" || echo "+$c" > "$root/c2d/cgroup.subtree_control"; done
  chown "$user" "$root/c2d" "$root/c2d/cgroup.procs" "$root/c2d/cgroup.subtree_control" "$root/c2d/cgroup.threads"
  echo "delegated $root/c2d to $user (cgroup v2)"
else
  for c in memory cpu pids; do
    [ -f "$root/$c/cgroup.procs" ] || { echo "the v1 $c controller is not mounted at $root/$c" >&2; exit 1; }
    mkdir -p "$root/$c/c2d"
    chown -R "$user" "$root/$c/c2d"
  done
  echo "delegated $root/{memory,cpu,pids}/c2d to $user (cgroup v1)"
fi
