#!/bin/sh
set -e

if [ "$1" = 'node' ]; then
  npx prisma migrate deploy
fi

exec "$@"
