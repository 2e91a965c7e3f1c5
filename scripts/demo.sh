#!/bin/sh
# Install what is missing, build, and run the main demo: tern-signal serving the demo page on
# port 8080 (every address of this machine) with tern-echo, a native peer, in room "demo".
# Open the printed URL in a browser on this machine or the LAN: the page joins the room, connects
# to tern-echo directly (peer to peer), and what you type in the chat or drop as a file comes back.
# Usage: scripts/demo.sh [PORT]      Ctrl-C stops both programs.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
port=${1:-8080}
"$top/scripts/setup.sh" build
build="$top/build/release"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTERN_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target tern-signal tern-echo

"$build/signaling/tern-signal" --listen "0.0.0.0:$port" --root "$top/examples/web" &
signal_pid=$!
echo_pid=""
cleanup() {
    [ -n "$echo_pid" ] && kill "$echo_pid" 2>/dev/null
    kill "$signal_pid" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT INT TERM
# Give the server a moment to listen, then bring the native peer, which offers to every page
# that joins the room after it (signaling-protocol.md).
sleep 0.5
kill -0 "$signal_pid" 2>/dev/null || { echo "tern-signal did not start"; exit 1; }
"$build/examples/tern-echo" --signal "ws://127.0.0.1:$port/ws/demo" &
echo_pid=$!
host=$(hostname -I 2>/dev/null | awk '{print $1}')
echo
echo "tern demo: open one of these in a browser (room \"demo\", tern-echo is in it):"
echo "    http://127.0.0.1:$port/?room=demo"
[ -n "$host" ] && echo "    http://$host:$port/?room=demo"
echo "Ctrl-C stops the demo."
wait "$signal_pid"
