#!/bin/sh
# certbot --manual-auth-hook / --manual-cleanup-hook: $1 = present|cleanup,
# CERTBOT_DOMAIN and CERTBOT_VALIDATION in the environment.
set -eu
host="_acme-challenge.${CERTBOT_DOMAIN}."
if [ "$1" = present ]; then
  exec curl -fsS -m 5 -o /dev/null -X POST -d "{\"host\":\"$host\",\"value\":\"$CERTBOT_VALIDATION\"}" "$BENCH_CHALLTESTSRV/set-txt"
else
  exec curl -fsS -m 5 -o /dev/null -X POST -d "{\"host\":\"$host\"}" "$BENCH_CHALLTESTSRV/clear-txt"
fi
