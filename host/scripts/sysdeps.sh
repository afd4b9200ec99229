#!/usr/bin/env bash
# Debian packages twintap needs on the host: socat (pty/TCP plumbing by hand), mosquitto and
# its clients (the local broker), nodejs and npm (the official IoTize client in interop tests),
# chromium (the dashboard's browser tests drive it headless).
# Installs what is missing with apt-get when run as root; otherwise says what to install.
set -euo pipefail

declare -A pkg_for=(
  [socat]=socat
  [mosquitto]=mosquitto
  [mosquitto_pub]=mosquitto-clients
  [node]=nodejs
  [npm]=npm
  [chromium]=chromium
)
missing=()
for cmd in socat mosquitto mosquitto_pub node npm chromium; do
  # mosquitto lives in /usr/sbin, which is not on every user's PATH
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    missing+=("${pkg_for[$cmd]}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "twintap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "twintap: missing system packages: ${missing[*]}" >&2
  echo "twintap: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
