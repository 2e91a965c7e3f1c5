#!/bin/sh
# Install what is missing, build, and run the main demo.
# Today the demo is tern-hello: two peer connections in one process open a data channel over
# loopback and exchange a greeting. (The signaling server and browser demo page come next.)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh" build
cmake -S "$top" -B "$top/build/release" -DCMAKE_BUILD_TYPE=Release -DTERN_BUILD_TESTS=OFF >/dev/null
cmake --build "$top/build/release" -j "$(nproc)" --target tern-hello
exec "$top/build/release/examples/tern-hello"
