#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Run the browser suite (driver.mjs) inside a network namespace that this script creates and
# removes. Browsers try to reach outside hosts even with every quiet flag, so they only ever run
# in a namespace with nothing but `lo` (TESTING.md, the network rule): a default route through
# lo with source 127.0.0.1, and a resolv.conf pointing at 127.0.0.1, so stray connections and
# look-ups die on loopback. Every process of the suite (tern-signal, the native peers, the
# browsers and their helpers) runs in that namespace; on exit, also on failure or a signal, the
# processes still in it are ended by PID (`ip netns pids`: all of them were started here), then
# the namespace and /etc/netns/NAME are removed.
#
# Usage: run.sh [driver options]   (see driver.mjs; needs root, ip, node >= 20)
set -eu
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "not ok - the browser suite needs root (it creates a network namespace)"
    exit 1
fi
for tool in ip node; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "not ok - '$tool' is missing (scripts/setup.sh test installs it)"
        exit 1
    fi
done

if ! node --experimental-websocket --no-warnings -e \
    'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
    echo "not ok - node $(node --version) has no WebSocket client (the driver needs node >= 20.10)"
    exit 1
fi

ns="tern-browser-$$"

# End every process left in namespace $1, by PID: TERM, a grace period, then KILL.
end_processes() {
    pids=$(ip netns pids "$1" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        pids=$(ip netns pids "$1" 2>/dev/null || true)
        [ -n "$pids" ] || return 0
        sleep 0.3
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
}

cleanup() {
    status=$?
    trap - EXIT INT TERM HUP
    if ip netns list | grep -q "^$ns\b"; then
        end_processes "$ns"
        ip netns del "$ns" 2>/dev/null || true
    fi
    rm -rf "/etc/netns/$ns"
    exit "$status"
}
# A run killed with SIGKILL (a ctest timeout) could not clean up: remove namespaces of earlier
# runs whose shell is gone, with whatever they still hold.
for old in $(ip netns list | sed -n 's/^\(tern-browser-[0-9]*\).*/\1/p'); do
    if ! kill -0 "${old#tern-browser-}" 2>/dev/null; then
        end_processes "$old"
        ip netns del "$old" 2>/dev/null || true
        rm -rf "/etc/netns/$old"
    fi
done

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

ip netns add "$ns"
mkdir -p "/etc/netns/$ns"
echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"
ip -n "$ns" link set lo up
ip -n "$ns" route add default dev lo src 127.0.0.1
ip -n "$ns" -6 route add default dev lo 2>/dev/null || true

# The driver is not exec'd: this shell must outlive it to clean up. It runs in the background
# so that a signal to this shell interrupts `wait` and runs the traps at once (a foreground
# child would delay them until it ended). Node 20 has a WebSocket client behind a flag (the
# driver needs no npm package).
ip netns exec "$ns" node --experimental-websocket --no-warnings "$here/driver.mjs" \
    --netns "$ns" "$@" </dev/null &
driver=$!
set +e
wait "$driver"
status=$?
set -e
exit "$status"
