#!/usr/bin/env bash
# Prints every benchmark figure, with the command that gives each. Needs
# DATABASE_URL, REDIS_URL and S3_ENDPOINT (make bench starts private servers).
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== start-up: go run ./tests/bench/startup"
make -s build
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/bare ./tests/bench/startup/bare
go run ./tests/bench/startup -bin bin

echo
echo "== outbox relay lag: go test -run '^\$' -bench RelayLag -benchtime 1x ./shared/outbox/"
go test -count=1 -run '^$' -bench RelayLag -benchtime 1x ./shared/outbox/

echo
echo "== events end to end, outbox → broker → handler with inbox: go test -run '^\$' -bench Pipeline -benchtime 1x ./tests/e2e/"
go test -count=1 -run '^$' -bench Pipeline -benchtime 1x ./tests/e2e/

echo
echo "== purchases, POST /orders → active: go test -run '^\$' -bench BillingPurchase -benchtime 100x ./tests/e2e/"
go test -count=1 -run '^$' -bench BillingPurchase -benchtime 100x ./tests/e2e/

echo
echo "== console phones page with 50 phones in Chromium, first contentful paint and weight: go test -run ConsolePhonesPageWithFiftyPhones -v ./tests/e2e/"
go test -count=1 -run 'TestConsolePhonesPageWithFiftyPhonesStaysLight' -v ./tests/e2e/ | grep -E 'figure:|SKIP|FAIL' || true

echo
echo "== notifications, Record start → arrival on an open stream, 1,000 streams: go test -run '^\$' -bench StreamDelivery -benchtime 1x ./functions/notification/"
go test -count=1 -run '^$' -bench StreamDelivery -benchtime 1x ./functions/notification/

echo
echo "== placement decision, 1,000 nodes and 10,000 phones in the database vs one node: go test -run '^\$' -bench Placement ./functions/device/"
go test -count=1 -run '^$' -bench Placement ./functions/device/

echo
echo "== 40 phones create → running, on one node vs spread over two (part of -bench . below): go test -run '^\$' -bench CreateToRunningOverNodes -benchtime 1x ./tests/bench/device/"

for pkg in ./tests/bench/ratelimit/ ./tests/bench/edge/ ./shared/auth/ ./shared/servicetoken/ ./tests/bench/device/ ./functions/billing/; do
  if [ -d "$pkg" ] && ls "$pkg"*_test.go >/dev/null 2>&1 && grep -qs '^func Benchmark' "$pkg"*_test.go; then
    echo
    echo "== go test -run '^\$' -bench . $pkg"
    go test -count=1 -run '^$' -bench . -benchmem "$pkg"
  fi
done

echo
echo "== ADB straight to a phone stand-in, Client vs Debian's adb: go test -run '^\$' -bench Push50MB -benchtime 3x ./tests/bench/adb/"
go test -count=1 -run '^$' -bench Push50MB -benchtime 3x ./tests/bench/adb/
echo "== go test -run '^\$' -bench ShellRoundTrip -benchtime 200x ./tests/bench/adb/"
go test -count=1 -run '^$' -bench ShellRoundTrip -benchtime 200x ./tests/bench/adb/

echo
echo "== ADB gateway, through cpctl adb-connect and the gateway vs straight to the phone's port, beside two plain TCP relays in user space (one run): go test -run '^\$' -bench Push50MB -benchtime 3x ./tests/bench/gateway/"
go test -count=1 -run '^$' -bench Push50MB -benchtime 3x ./tests/bench/gateway/
echo "== go test -run '^\$' -bench 'ShellRoundTrip|SessionMemory' -benchtime 100x ./tests/bench/gateway/"
go test -count=1 -run '^$' -bench 'ShellRoundTrip|SessionMemory' -benchtime 100x ./tests/bench/gateway/
echo "== APK upload, 100 MiB through app-apps vs a straight PutObject: go test -run '^\$' -bench Upload100MiBAPK -benchtime 3x ./tests/bench/apps/"
go test -count=1 -run '^$' -bench Upload100MiBAPK -benchtime 3x ./tests/bench/apps/
echo "== app install, small APK, POST /apps → installed on a running stand-in phone: go test -run '^\$' -bench UploadToInstalled -benchtime 10x ./tests/bench/apps/"
go test -count=1 -run '^$' -bench UploadToInstalled -benchtime 10x ./tests/bench/apps/

echo
echo "== rehearsal: a bundle container's cold start vs the same binary as a process, a fact through the broker between containers vs in one process: go test -run '^\$' -bench Rehearsal -benchtime 1x ./tests/bench/rehearsal/"
go test -count=1 -timeout 30m -run '^$' -bench Rehearsal -benchtime 1x ./tests/bench/rehearsal/ | grep -E 'figure:|SKIP|FAIL|ok' || true
