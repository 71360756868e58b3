#!/bin/sh
# acmeali --dns-hook: ACMEALI_ACTION=present|cleanup, ACMEALI_TXT_NAME, ACMEALI_TXT_VALUE.
# BENCH_CHALLTESTSRV is pebble-challtestsrv's management URL (set by bench/run.py).
set -eu
host="${ACMEALI_TXT_NAME%.}."
if [ "$ACMEALI_ACTION" = present ]; then
  exec curl -fsS -m 5 -o /dev/null -X POST -d "{\"host\":\"$host\",\"value\":\"$ACMEALI_TXT_VALUE\"}" "$BENCH_CHALLTESTSRV/set-txt"
else
  exec curl -fsS -m 5 -o /dev/null -X POST -d "{\"host\":\"$host\"}" "$BENCH_CHALLTESTSRV/clear-txt"
fi
