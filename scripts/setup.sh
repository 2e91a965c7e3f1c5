#!/bin/sh
# Install what tern needs from Debian 12's packages, only what is missing (idempotent).
# Usage: scripts/setup.sh [build|test]   (test adds what the test suite needs)
set -eu
need="build-essential cmake pkg-config libssl-dev libusrsctp-dev libsrtp2-dev libjansson-dev"
if [ "${1:-build}" = test ]; then
    need="$need clang libclang-rt-14-dev valgrind iproute2"
    # The browser suite (tests/browser): Debian's browsers, driven headless, and Node.js for
    # its driver (which uses no npm package: Node 20's WebSocket client is enough).
    need="$need chromium firefox-esr nodejs"
fi
missing=""
for pkg in $need; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $pkg" ;;
    esac
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    # shellcheck disable=SC2086
    $sudo apt-get install -y -q --no-install-recommends $missing
fi
