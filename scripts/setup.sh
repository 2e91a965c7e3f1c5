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
    # The NAT lab (tests/netlab): nftables NATs, coturn (its service must not start: see below),
    # python3 for the driver, openssl for coturn's certificate.
    need="$need nftables coturn python3 openssl"
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
    # No package may start a service in the host namespace while installing (coturn would
    # listen on every address): a policy-rc.d that forbids it, removed afterwards if it is ours.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod 755 "$policy"
        trap '$sudo rm -f "$policy"' EXIT
    fi
    # shellcheck disable=SC2086
    $sudo apt-get install -y -q --no-install-recommends $missing
    # Nor at the next boot: the tests start coturn themselves, inside the lab.
    case " $missing " in
    *" coturn "*) $sudo systemctl disable --quiet coturn 2>/dev/null || true ;;
    esac
fi
