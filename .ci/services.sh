#!/usr/bin/env bash
# Sourced by .ci/test.sh: installs, starts and stops the real peers the tests
# talk to, on loopback only, and exports their addresses:
#   CONNKIT_MQTT_ADDR        anonymous mosquitto listener (host:port)
#   CONNKIT_MQTT_AUTH_ADDR   mosquitto listener that needs a password
#   CONNKIT_MQTT_USER, CONNKIT_MQTT_PASSWORD
#   CONNKIT_MQTT_TLS_ADDR    mosquitto TLS listener that requires a client
#                            certificate signed by CONNKIT_TLS_CA
#   CONNKIT_TLS_CA, CONNKIT_TLS_CLIENT_CERT, CONNKIT_TLS_CLIENT_KEY (PEM files)
#   CONNKIT_MYSQL_URL        mysql://connkit:...@127.0.0.1:PORT/test (MariaDB)
#   CONNKIT_REDIS_ADDR       redis-server that needs CONNKIT_REDIS_PASSWORD
#                            (for examples/customtype, a connector of outside)
#   CONNKIT_ETCD_ENDPOINTS   one etcd member (host:port) for store/etcd; the
#                            multi-instance tests start clusters of their own
#                            from the same etcd binary
# Tests that need one of them fail, not skip, when its variable is set.

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

SVC_DIR=$(mktemp -d /tmp/ck.XXXXXX)
SVC_PIDS=()

# free_port N: the first port from N up that nothing listens on.
free_port() {
	local p
	for p in $(seq "$1" $(($1 + 200))); do
		if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds or time runs out.
wait_for() {
	local what=$1 secs=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $deadline ]; then
			echo "$what did not become ready within ${secs}s" >&2
			return 1
		fi
		sleep 0.2
	done
}

stop_services() {
	local pid
	for pid in "${SVC_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	local deadline=$((SECONDS + 15))
	for pid in "${SVC_PIDS[@]}"; do
		while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$SVC_DIR"
}

# make_certs DIR: a CA, a server certificate for 127.0.0.1 and a client
# certificate, all signed by the CA (EC keys: quick to make).
make_certs() {
	local d=$1 ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
	mkdir -p "$d"
	openssl req -x509 "${ec[@]}" -days 2 -subj /CN=connkit-test-ca -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null &&
		openssl req "${ec[@]}" -subj /CN=127.0.0.1 -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null &&
		printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/server.ext" &&
		openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
			-extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null &&
		openssl req "${ec[@]}" -subj /CN=connkit-test-client -keyout "$d/client.key" -out "$d/client.csr" 2>/dev/null &&
		printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext" &&
		openssl x509 -req -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
			-extfile "$d/client.ext" -out "$d/client.pem" 2>/dev/null
}

start_mosquitto() {
	local anon auth tls
	anon=$(free_port 18830) && auth=$(free_port $((anon + 1))) && tls=$(free_port $((auth + 1))) || return 1
	make_certs "$SVC_DIR/tls" || { echo "openssl could not make the test certificates" >&2; return 1; }
	CONNKIT_MQTT_USER=connkit
	CONNKIT_MQTT_PASSWORD=connkit-mqtt-pw
	mosquitto_passwd -b -c "$SVC_DIR/mqtt.passwd" "$CONNKIT_MQTT_USER" "$CONNKIT_MQTT_PASSWORD" >/dev/null 2>&1
	cat >"$SVC_DIR/mosquitto.conf" <<CONF
per_listener_settings true
persistence false
user root
sys_interval 1
log_dest file $SVC_DIR/mosquitto.log
listener $anon 127.0.0.1
allow_anonymous true
listener $auth 127.0.0.1
allow_anonymous false
password_file $SVC_DIR/mqtt.passwd
listener $tls 127.0.0.1
allow_anonymous true
cafile $SVC_DIR/tls/ca.pem
certfile $SVC_DIR/tls/server.pem
keyfile $SVC_DIR/tls/server.key
require_certificate true
CONF
	mosquitto -c "$SVC_DIR/mosquitto.conf" >>"$SVC_DIR/mosquitto.out" 2>&1 &
	SVC_PIDS+=($!)
	wait_for "mosquitto" 20 mosquitto_pub -h 127.0.0.1 -p "$anon" -t ready -m 1 || { cat "$SVC_DIR"/mosquitto.* >&2; return 1; }
	wait_for "mosquitto auth listener" 20 mosquitto_pub -h 127.0.0.1 -p "$auth" -u "$CONNKIT_MQTT_USER" -P "$CONNKIT_MQTT_PASSWORD" -t ready -m 1 || return 1
	wait_for "mosquitto TLS listener" 20 mosquitto_pub -h 127.0.0.1 -p "$tls" --cafile "$SVC_DIR/tls/ca.pem" \
		--cert "$SVC_DIR/tls/client.pem" --key "$SVC_DIR/tls/client.key" -t ready -m 1 || return 1
	export CONNKIT_MQTT_ADDR=127.0.0.1:$anon CONNKIT_MQTT_AUTH_ADDR=127.0.0.1:$auth CONNKIT_MQTT_USER CONNKIT_MQTT_PASSWORD
	export CONNKIT_MQTT_TLS_ADDR=127.0.0.1:$tls CONNKIT_TLS_CA=$SVC_DIR/tls/ca.pem
	export CONNKIT_TLS_CLIENT_CERT=$SVC_DIR/tls/client.pem CONNKIT_TLS_CLIENT_KEY=$SVC_DIR/tls/client.key
	echo "== mosquitto on 127.0.0.1:$anon (anonymous), :$auth (password) and :$tls (TLS, client certificate)" >&2
}

start_mariadb() {
	local port d=$SVC_DIR/mysql sock=$SVC_DIR/mysql.sock
	port=$(free_port 13306) || return 1
	mkdir -p "$d"
	mariadb-install-db --no-defaults --datadir="$d" --user=root \
		--auth-root-authentication-method=normal --skip-test-db >"$SVC_DIR/mariadb-install.log" 2>&1 ||
		{ cat "$SVC_DIR/mariadb-install.log" >&2; return 1; }
	mariadbd --no-defaults --datadir="$d" --user=root --socket="$sock" --pid-file="$SVC_DIR/mysql.pid" \
		--port="$port" --bind-address=127.0.0.1 --skip-name-resolve --log-error="$SVC_DIR/mariadb.err" &
	SVC_PIDS+=($!)
	wait_for "MariaDB" 60 mariadb-admin --no-defaults -S "$sock" -uroot ping || { cat "$SVC_DIR/mariadb.err" >&2; return 1; }
	mariadb --no-defaults -S "$sock" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS test;
CREATE USER 'connkit'@'%' IDENTIFIED BY 'connkit-db-pw';
GRANT ALL ON test.* TO 'connkit'@'%';
SQL
	export CONNKIT_MYSQL_URL="mysql://connkit:connkit-db-pw@127.0.0.1:$port/test"
	echo "== MariaDB on 127.0.0.1:$port" >&2
}

start_redis() {
	local port
	port=$(free_port 16379) || return 1
	CONNKIT_REDIS_PASSWORD=connkit-redis-pw
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --requirepass "$CONNKIT_REDIS_PASSWORD" \
		--dir "$SVC_DIR" --logfile "$SVC_DIR/redis.log" &
	SVC_PIDS+=($!)
	wait_for "redis" 20 sh -c "redis-cli -h 127.0.0.1 -p $port -a $CONNKIT_REDIS_PASSWORD --no-auth-warning ping | grep -q PONG" || return 1
	export CONNKIT_REDIS_ADDR=127.0.0.1:$port CONNKIT_REDIS_PASSWORD
	echo "== redis on 127.0.0.1:$port" >&2
}

start_etcd() {
	local client peer
	client=$(free_port 12379) && peer=$(free_port $((client + 1))) || return 1
	etcd --name ck --data-dir "$SVC_DIR/etcd" --listen-client-urls "http://127.0.0.1:$client" \
		--advertise-client-urls "http://127.0.0.1:$client" --listen-peer-urls "http://127.0.0.1:$peer" \
		--initial-advertise-peer-urls "http://127.0.0.1:$peer" --initial-cluster "ck=http://127.0.0.1:$peer" \
		>"$SVC_DIR/etcd.log" 2>&1 &
	SVC_PIDS+=($!)
	wait_for "etcd" 30 curl -sf "http://127.0.0.1:$client/health" || { tail -20 "$SVC_DIR/etcd.log" >&2; return 1; }
	export CONNKIT_ETCD_ENDPOINTS=127.0.0.1:$client
	echo "== etcd on 127.0.0.1:$client" >&2
}

start_services() {
	apt_install mosquitto mosquitto-clients mariadb-server mariadb-client openssl redis-server etcd-server curl || return 1
	# Debian puts the daemons in sbin.
	export PATH=$PATH:/usr/sbin:/sbin
	trap stop_services EXIT
	start_mosquitto && start_mariadb && start_redis && start_etcd
}
