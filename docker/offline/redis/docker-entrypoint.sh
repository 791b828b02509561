#!/bin/sh
# As the official image: own /data, drop to the redis user, and leave protected mode off (the
# container's network is the boundary; without a config file Redis would refuse other hosts).
set -eu
if [ "${1:-}" = redis-server ]; then
    shift
    set -- redis-server "$@" --protected-mode no
    if [ "$(id -u)" = 0 ]; then
        chown -R redis:redis /data
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
