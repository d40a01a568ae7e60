#!/usr/bin/env bash
# Runs each fuzz target for the given time (default 60s), one after another,
# on private Postgres and Redis unless DATABASE_URL / REDIS_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-60s}
targets=(
  "./shared/auth FuzzVerify"
  "./shared/httpjson FuzzDecode"
  "./functions/user FuzzDecodeRequests"
  "./tests/e2e FuzzPublicRoutes"
)
for t in "${targets[@]}"; do
  set -- $t
  echo "== go test -run '^\$' -fuzz '^$2\$' -fuzztime $time $1"
  go run ./infra/cmd/devenv -- go test -run '^$' -fuzz "^$2\$" -fuzztime "$time" "$1"
done
