#!/usr/bin/env bash
# Set up everything edgeattack needs on a fresh Debian 12 machine with Python >= 3.10:
# system packages (ARM toolchain, QEMU, OpenSSH server, ser2net, clang) and a virtual environment in
# .venv with the package and its test extras. Idempotent: installs only what is missing.
#   tools/setup.sh [--no-system] [--pi-rootfs]
# --pi-rootfs (make test): also debootstrap, proot and qemu-user-static, and the cached Debian 12 arm64
# root filesystem that plays the Raspberry Pi (tools/pi_rootfs.sh; first time about 10 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm openssh-server openssh-client
              ser2net clang libclang-rt-14-dev make chromium)
WANT_APT=1
WANT_PI_ROOTFS=0
for arg in "$@"; do
  case "$arg" in
    --no-system) WANT_APT=0 ;;
    --pi-rootfs) WANT_PI_ROOTFS=1; APT_PACKAGES+=(debootstrap proot qemu-user-static) ;;
    *) echo "setup: unknown option $arg (use --no-system, --pi-rootfs)" >&2; exit 2 ;;
  esac
done

missing=()
if [ "$WANT_APT" = 1 ]; then
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing system packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

VENV=${EDGEATTACK_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  python3 -m venv "$VENV"
fi
# Reinstall only when pyproject.toml changed since the last install (a stamp file remembers).
stamp="$VENV/.edgeattack-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing edgeattack and its dependencies into $VENV (first time: about 2 minutes)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi

if [ "$WANT_PI_ROOTFS" = 1 ]; then
  tools/pi_rootfs.sh "$VENV/bin/python" >/dev/null  # cached: does nothing when already built
fi
