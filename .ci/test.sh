#!/usr/bin/env bash
# Runs every test. Installs what is missing (apt-get, as root), checks
# formatting and vet, then go test -race over the whole module.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

# apt_install PKG...: install Debian packages that are missing, if we can.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		log "missing ${missing[*]} and cannot apt-get them (not root, or no apt)"
		return 1
	fi
	log "installing ${missing[*]}"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

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
source .ci/services.sh
start_services

log "go vet"
go vet $TAGS ./...

log "go test -race"
go test $TAGS -race -count=1 -timeout 20m ./...
