#!/usr/bin/env bash
# Runs every test. Installs what is missing (apt-get, as root), checks
# formatting and vet, then go test -race over the whole module.
set -euo pipefail
cd "$(dirname "$0")/.."

source .ci/services.sh

# Link Debian's SQLite instead of compiling the bundled one twice (plain
# and -race): it saves about a minute and a half of a cold build.
TAGS=""
if apt_install libsqlite3-dev; then
	TAGS="-tags=libsqlite3"
fi

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "not gofmt'd:" >&2
	echo "$unformatted" >&2
	exit 1
fi

# The real peers: mosquitto and MariaDB on loopback, stopped on exit.
start_services

# The page's tests drive Debian's chromium, headless.
apt_install chromium
export CONNKIT_CHROMIUM=/usr/bin/chromium

log "go vet"
go vet $TAGS ./...

log "go test -race"
go test $TAGS -race -count=1 -timeout 20m ./...

# A short fuzz run of every target on top of its committed corpus
# (FUZZTIME=1m make test for a longer one).
log "fuzz"
for target in connection/httpapi:FuzzCreateBody connection/httpapi:FuzzUpdateBody \
	connection/httpapi:FuzzCheckBody connection/httpapi:FuzzID connector/all:FuzzProps \
	connection/internal/jsonbody:FuzzParse; do
	go test $TAGS -run '^$' -fuzz "^${target#*:}\$" -fuzztime "${FUZZTIME:-5s}" "./${target%%:*}/"
done
