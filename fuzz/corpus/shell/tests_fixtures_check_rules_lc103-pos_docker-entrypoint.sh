#!/bin/sh
set -e

# Wait for the database before starting.
until nc -z "$DB_HOST" 5432; do
  echo "waiting for postgres..."
  sleep 1
done

if [ "$1" = 'node' ]; then
  npx prisma migrate deploy
fi

"$@"
