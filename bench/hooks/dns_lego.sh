#!/bin/sh
# lego --dns exec (EXEC_PATH): called as `script present|cleanup FQDN VALUE`.
set -eu
host="${2%.}."
if [ "$1" = present ]; then
  exec curl -fsS -m 5 -o /dev/null -X POST -d "{\"host\":\"$host\",\"value\":\"$3\"}" "$BENCH_CHALLTESTSRV/set-txt"
elif [ "$1" = cleanup ]; then
  exec curl -fsS -m 5 -o /dev/null -X POST -d "{\"host\":\"$host\"}" "$BENCH_CHALLTESTSRV/clear-txt"
fi
