#!/bin/sh
# Install tern from a build folder into a fresh prefix, then build and run a user's program
# against it twice: with pkg-config, and with CMake's find_package(tern).
# Usage: check_install.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1
build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name tern.pc -printf '%h\n' | head -1)
[ -n "$libdir" ] || { echo "tern.pc not installed"; exit 1; }
export PKG_CONFIG_PATH="$libdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
libs=$(dirname "$libdir")

# pkg-config, shared library
# shellcheck disable=SC2046
cc -std=c11 -o "$work/consumer_pc" "$src/tests/install/consumer.c" $(pkg-config --cflags --libs tern)
LD_LIBRARY_PATH="$libs" "$work/consumer_pc"
# pkg-config, static library
# shellcheck disable=SC2046
cc -std=c11 -DTERN_STATIC_DEFINE -o "$work/consumer_pc_static" "$src/tests/install/consumer.c" \
    $(pkg-config --cflags tern) "$libs/libtern.a" $(pkg-config --libs --static tern | sed 's/-ltern//')
"$work/consumer_pc_static"

# CMake find_package
cmake -S "$src/tests/install" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake" >/dev/null
LD_LIBRARY_PATH="$libs" "$work/cmake/consumer_shared"
"$work/cmake/consumer_static"
echo "install ok"
