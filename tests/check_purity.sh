#!/bin/sh
# Fails if a sans-IO layer (everything in src/ but io/) calls the clock, sleeps, opens sockets,
# starts threads, reads the environment or uses libc's random numbers (CONVENTIONS.md §1).
src=${1:?usage: check_purity.sh SRC_DIR}
pattern='\b(clock_gettime|gettimeofday|time|sleep|usleep|nanosleep|socket|sendto|recvfrom|sendmsg|recvmsg|epoll_[a-z_]+|pthread_[a-z_]+|getenv|rand|random|srand)\('
hits=$(find "$src" -name '*.[ch]' -not -path "$src/io/*" -print0 |
    xargs -0 grep -nE "$pattern" /dev/null | grep -vE '^\S+:[0-9]+:\s*(/?\*|//)')
if [ -n "$hits" ]; then
    echo "sans-IO layers must not do I/O; found:"
    echo "$hits"
    exit 1
fi
echo "purity ok"
