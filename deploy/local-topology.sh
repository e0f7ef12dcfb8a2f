#!/bin/sh
# The docker-compose topology as local processes: one redis-server and two wsgw nodes on the Redis registry.
#   deploy/local-topology.sh            → nodes on :8081 and :8082, Redis on :6390; Ctrl-C stops everything
# Put any load balancer in front (deploy/haproxy.cfg with the servers pointed at 127.0.0.1:8081/8082), or post
# to either node directly: a push reaches the client whichever node it is connected to.
set -eu
REDIS_PORT=${REDIS_PORT:-6390}
CONFIG=${CONFIG:-wsgw.yaml}
WSGW=${WSGW:-wsgw}
URL="redis://127.0.0.1:${REDIS_PORT}/0"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null &
PIDS=$!
trap 'kill $PIDS 2>/dev/null; wait' INT TERM EXIT
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
for PORT in 8081 8082; do
    $WSGW run -c "$CONFIG" --port "$PORT" --redis "$URL" &
    PIDS="$PIDS $!"
done
wait
