#!/usr/bin/env bash
# Build (once) the Raspberry Pi's software as a directory: a Debian 12 arm64 root filesystem (Raspberry
# Pi OS Bookworm is Debian 12) with python3, OpenSSH's server and a venv holding the agent's wheels
# (the real aarch64 ai-edge-litert, numpy, pyserial). tests/test_deploy_pi_aarch64.py runs sshd inside
# it under `proot -q qemu-aarch64-static` (no binfmt_misc needed) and deploys to it with
# `edgeattack flash --board pi4`. Needs debootstrap, proot and qemu-user-static (tools/setup.sh
# installs them) and the Debian and Python package registries, here only: the test needs no network.
#
#   tools/pi_rootfs.sh [HOST_PYTHON]    # prints the root's path; HOST_PYTHON pins ai-edge-litert
#
# Cached in $EDGEATTACK_PI_ROOTFS (default ~/.cache/edgeattack/pi-rootfs-bookworm-arm64). The root
# is built in a sibling .partial directory and renamed only when every step passed, then a stamp
# (RECIPE below and the LiteRT version) is written: a half-built root is never used, and a new recipe
# or LiteRT version rebuilds it. Idempotent: with a matching stamp it does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${EDGEATTACK_PI_ROOTFS:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeattack/pi-rootfs-bookworm-arm64}
MIRROR=http://deb.debian.org/debian
VENV_IN_ROOT=/opt/edgeattack-venv   # the python `flash --python` is given (tests/test_deploy_pi_aarch64.py)
HOST_PY=${1:-.venv/bin/python}
RECIPE=1   # bump when a step below changes what the root holds

# The board computes with the same LiteRT as the host (deploy/pi.py pins it the same way).
litert=$("$HOST_PY" -c "from importlib import metadata; print(metadata.version('ai-edge-litert'))")
want="recipe $RECIPE ai-edge-litert==$litert"
STAMP="$ROOT.stamp"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$ROOT$VENV_IN_ROOT/bin/python" ]; then
  echo "$ROOT"
  exit 0
fi

for tool in debootstrap proot qemu-aarch64-static; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "$tool" >/dev/null || {
    echo "pi_rootfs: $tool is missing: run tools/setup.sh (it installs debootstrap proot qemu-user-static)" >&2
    exit 1
  }
done
export PATH=$PATH:/usr/sbin:/sbin

start=$(date +%s)
WORK="$ROOT.partial"
# debootstrap's second stage mounts /proc and /sys inside the root for real (we are root) and leaves
# them mounted when it fails: unmount before deleting, and never delete across file systems.
unmount_inside() {
  awk -v p="$1/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
}
trap 'unmount_inside "$WORK"' EXIT
rm -f "$STAMP"
unmount_inside "$WORK"
rm -rf --one-file-system "$WORK"
mkdir -p "$(dirname "$ROOT")"
echo "pi_rootfs: building the Debian 12 arm64 root in $WORK (first time: several minutes)" >&2

# proot as root inside the arm64 root, every aarch64 program under qemu (children included). No host
# folder that a package inside writes to is bound: ca-certificates' post-install rewrites
# /etc/ssl/certs, which must stay the root's own (the host's may hold local CAs). Except /tmp: under
# proot, stat of a path in the root's /tmp looks at the host's, and openssh-server's post-install
# (mktemp, then stat) fails unless both are the same folder.
inside() {
  proot -q qemu-aarch64-static -0 -r "$WORK" -w / -b /dev -b /proc -b /sys -b /tmp "$@"
}

debootstrap --arch=arm64 --foreign --variant=minbase bookworm "$WORK" "$MIRROR" >"$WORK.log" 2>&1 \
  || { echo "pi_rootfs: debootstrap (first stage) failed, see $WORK.log" >&2; exit 1; }
DEBOOTSTRAP_DIR=/debootstrap proot -q qemu-aarch64-static -0 -r "$WORK" -w / \
  /debootstrap/debootstrap --second-stage >>"$WORK.log" 2>&1 \
  || { echo "pi_rootfs: debootstrap (second stage, emulated) failed, see $WORK.log" >&2; exit 1; }
echo "pi_rootfs: base system done after $(( $(date +%s) - start )) s" >&2

# No service starts inside the root: without it openssh-server's post-install would start an sshd
# on this machine's port 22 (the standard policy-rc.d of chroots: 101 = action forbidden).
printf '#!/bin/sh\nexit 101\n' > "$WORK/usr/sbin/policy-rc.d"
chmod 755 "$WORK/usr/sbin/policy-rc.d"
# minbase has no archive key; name resolution as on the host
cp /usr/share/keyrings/debian-archive-keyring.gpg "$WORK/etc/apt/trusted.gpg.d/"
cp -L /etc/resolv.conf "$WORK/etc/resolv.conf"
# (each step joined with &&: a { ...; } group's status would be its last command's only)
{
  inside /usr/bin/apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive inside /usr/bin/apt-get install -y -qq --no-install-recommends \
    python3 python3-venv openssh-server &&
  inside /usr/bin/apt-get clean &&
  grep -q '^sshd:' "$WORK/etc/passwd"   # openssh-server's post-install ran to its end
} >>"$WORK.log" 2>&1 || { echo "pi_rootfs: apt-get inside the root failed, see $WORK.log" >&2; exit 1; }
echo "pi_rootfs: python3 and openssh-server done after $(( $(date +%s) - start )) s" >&2

# the agent's wheels, installed now so that deploying in a test needs no network. pip trusts the
# host's CA bundle (a copy: the host may reach the registry through its own CA), removed afterwards.
CA_COPY=/opt/host-ca.crt   # not in /tmp, which is the host's while `inside` runs
cp -L /etc/ssl/certs/ca-certificates.crt "$WORK$CA_COPY"
{
  inside /usr/bin/python3 -m venv "$VENV_IN_ROOT" &&
  ( # every CA setting the host's environment may pass in points at the copy; host-only wheel folders go
    unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL
    export PIP_CERT=$CA_COPY REQUESTS_CA_BUNDLE=$CA_COPY SSL_CERT_FILE=$CA_COPY
    inside "$VENV_IN_ROOT/bin/python" -m pip install -q --no-cache-dir "ai-edge-litert==$litert" numpy pyserial
  ) &&
  inside "$VENV_IN_ROOT/bin/python" -c \
    "import platform, numpy, serial; from ai_edge_litert.interpreter import Interpreter; assert platform.machine() == 'aarch64', platform.machine()"
} >>"$WORK.log" 2>&1 || { echo "pi_rootfs: the agent's wheels did not install inside the root, see $WORK.log" >&2; exit 1; }
rm -f "$WORK$CA_COPY" "$WORK/etc/ssh"/ssh_host_*   # tests bring their own host key; none is shared through the cache

unmount_inside "$WORK"
unmount_inside "$ROOT"
rm -rf --one-file-system "$ROOT"
mv "$WORK" "$ROOT"
mv "$WORK.log" "$ROOT.log"
echo "$want" > "$STAMP"
echo "pi_rootfs: ready in $(( $(date +%s) - start )) s: $ROOT" >&2
echo "$ROOT"
