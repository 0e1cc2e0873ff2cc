#!/usr/bin/env bash
# A production-shaped trustgate on one machine, for trying the topology and for the fault run:
#
#   HAProxy (health checks on /readyz)
#     -> 3 x trustgate serve (one PostgreSQL store, TLS to SpiceDB with a CA made here)
#       -> 3 x SpiceDB (same version as the embedded one, dispatch between them over TLS,
#          their own PostgreSQL database), found by name through a local dnsmasq
#
# Usage:
#   cluster.sh up DIR          build, make the CA, create the databases, start everything
#   cluster.sh down DIR        stop everything started in DIR and drop its databases
#   cluster.sh kill DIR NAME   kill -9 one process (trustgate-2, spicedb-3, ...)
#   cluster.sh start DIR NAME  start one process again (after kill)
#   cluster.sh status DIR      what runs
#
# Environment: TRUSTGATE_CLUSTER_POSTGRES (a PostgreSQL URL whose user may create databases;
# default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) and
# TRUSTGATE_CLUSTER_PORT (first of the ports used, default 18400); TRUSTGATE_CLUSTER_TRUSTGATE
# runs that trustgate binary instead of building this checkout. Everything else — binaries,
# keys, certificates, logs, pid files, cluster.env with the URLs — is under DIR.
set -euo pipefail

usage() { sed -n '9,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
CMD=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)
NAME=${3:-}
REPO=$(cd "$(dirname "$0")/../.." && pwd)

PG=${TRUSTGATE_CLUSTER_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
BASE=${TRUSTGATE_CLUSTER_PORT:-18400}
LB_PORT=$BASE
DNS_PORT=$((BASE + 1))
SPICEDB_GRPC=$((BASE + 10))
SPICEDB_DISPATCH=$((BASE + 11))
SPICEDB_METRICS=$((BASE + 12))
NODES="1 2 3"
spicedb_ip() { echo "127.0.0.1$1"; }    # 127.0.0.11 .. 127.0.0.13: one loopback address per node
trustgate_port() { echo $((BASE + 20 + $1)); }
trustgate_metrics() { echo $((BASE + 30 + $1)); }

# Databases are named after the first port, so that two clusters on one server stay apart.
STORE_DB=trustgate_cluster_${BASE}_store
SPICEDB_DB=trustgate_cluster_${BASE}_spicedb
pg_url() { # the URL of database $1 on the server of $PG
	local root=${PG%%\?*} query=""
	[[ $PG == *\?* ]] && query="?${PG#*\?}"
	echo "${root%/*}/$1$query"
}

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

need() {
	command -v "$1" >/dev/null 2>&1 && return
	[ -n "${2:-}" ] || die "$1 is needed"
	log "installing $2 (for $1)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null || die "could not install $2"
}

pidfile() { echo "$DIR/run/$1.pid"; }
running() { local f; f=$(pidfile "$1"); [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

# launch NAME CMD...: run CMD in the background with its output in logs/NAME.log.
launch() {
	local name=$1; shift
	running "$name" && die "$name already runs (pid $(cat "$(pidfile "$name")"))"
	mkdir -p "$DIR/run" "$DIR/logs"
	setsid "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$(pidfile "$name")"
}

wait_tcp() { # NAME HOST PORT
	for _ in $(seq 1 300); do
		running "$1" || die "$1 exited; see $DIR/logs/$1.log"
		(exec 3<>"/dev/tcp/$2/$3") 2>/dev/null && return
		sleep 0.2
	done
	die "$1 does not listen on $2:$3; see $DIR/logs/$1.log"
}

wait_ready() { # NAME URL
	for _ in $(seq 1 600); do
		running "$1" || die "$1 exited; see $DIR/logs/$1.log"
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$2/readyz")" = 200 ] && return
		sleep 0.2
	done
	die "$1 not ready at $2; see $DIR/logs/$1.log"
}

build() {
	mkdir -p "$DIR/bin"
	if [ -n "${TRUSTGATE_CLUSTER_TRUSTGATE:-}" ]; then
		cp "$TRUSTGATE_CLUSTER_TRUSTGATE" "$DIR/bin/trustgate"
	else
		log "building trustgate"
		(cd "$REPO" && go build -o "$DIR/bin/trustgate" ./cmd/trustgate)
	fi
	# SpiceDB at the version trustgate embeds (go.mod), built from its own module.
	local version
	version=$(cd "$REPO" && go list -m -f '{{.Version}}' github.com/authzed/spicedb)
	if [ ! -x "$DIR/bin/spicedb" ] || ! "$DIR/bin/spicedb" version 2>/dev/null | grep -q "$version"; then
		log "building SpiceDB $version (the first build takes minutes)"
		(cd "$DIR" && GOBIN="$DIR/bin" go install "github.com/authzed/spicedb/cmd/spicedb@$version")
	fi
}

make_ca() {
	local ca=$DIR/tls
	[ -f "$ca/spicedb.pem" ] && return
	mkdir -p "$ca"
	log "making the cluster's CA and SpiceDB's certificate"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
		-subj "/CN=trustgate local cluster CA" -keyout "$ca/ca.key" -out "$ca/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=spicedb.cluster.test" \
		-keyout "$ca/spicedb.key" -out "$ca/spicedb.csr" 2>/dev/null
	printf 'subjectAltName=DNS:spicedb.cluster.test,DNS:dispatch.cluster.test,IP:127.0.0.11,IP:127.0.0.12,IP:127.0.0.13\nextendedKeyUsage=serverAuth,clientAuth\n' >"$ca/ext.cnf"
	openssl x509 -req -in "$ca/spicedb.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca.key" -CAcreateserial -days 30 \
		-extfile "$ca/ext.cnf" -out "$ca/spicedb.pem" 2>/dev/null
	chmod 0600 "$ca"/*.key
}

secrets() {
	[ -f "$DIR/spicedb.key" ] || openssl rand -hex 24 >"$DIR/spicedb.key"
	[ -f "$DIR/master.key" ] || openssl rand -hex 32 >"$DIR/master.key"
	chmod 0600 "$DIR/spicedb.key" "$DIR/master.key"
}

create_databases() {
	for db in "$STORE_DB" "$SPICEDB_DB"; do
		PGOPTIONS=--client-min-messages=warning psql "$PG" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
	done
	log "migrating SpiceDB's datastore"
	"$DIR/bin/spicedb" datastore migrate head --datastore-engine postgres \
		--datastore-conn-uri "$(pg_url "$SPICEDB_DB")" >>"$DIR/logs/spicedb-migrate.log" 2>&1 ||
		die "SpiceDB migration failed; see $DIR/logs/spicedb-migrate.log"
}

start_dns() {
	# Every node under one name: trustgate and the dispatch ring resolve it to all three.
	: >"$DIR/cluster.hosts"
	for i in $NODES; do
		echo "$(spicedb_ip "$i") spicedb.cluster.test dispatch.cluster.test" >>"$DIR/cluster.hosts"
	done
	launch dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null --port="$DNS_PORT" \
		--listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts --addn-hosts="$DIR/cluster.hosts" \
		--local-ttl=1 --user=root --pid-file=
	wait_tcp dnsmasq 127.0.0.1 "$DNS_PORT"
}

start_spicedb() { # N
	local ip; ip=$(spicedb_ip "$1")
	launch "spicedb-$1" "$DIR/bin/spicedb" serve \
		--grpc-preshared-key "$(cat "$DIR/spicedb.key")" \
		--grpc-addr "$ip:$SPICEDB_GRPC" \
		--grpc-tls-cert-path "$DIR/tls/spicedb.pem" --grpc-tls-key-path "$DIR/tls/spicedb.key" \
		--datastore-engine postgres --datastore-conn-uri "$(pg_url "$SPICEDB_DB")" \
		--datastore-conn-pool-read-max-open 6 --datastore-conn-pool-read-min-open 1 \
		--datastore-conn-pool-write-max-open 3 --datastore-conn-pool-write-min-open 1 \
		--dispatch-cluster-enabled \
		--dispatch-cluster-addr "$ip:$SPICEDB_DISPATCH" \
		--dispatch-cluster-tls-cert-path "$DIR/tls/spicedb.pem" --dispatch-cluster-tls-key-path "$DIR/tls/spicedb.key" \
		--dispatch-upstream-addr "dns://127.0.0.1:$DNS_PORT/dispatch.cluster.test:$SPICEDB_DISPATCH" \
		--dispatch-upstream-ca-path "$DIR/tls/ca.pem" \
		--metrics-addr "$ip:$SPICEDB_METRICS" \
		--http-enabled=false --telemetry-endpoint= --skip-release-check
	wait_tcp "spicedb-$1" "$ip" "$SPICEDB_GRPC"
}

start_trustgate() { # N
	local port; port=$(trustgate_port "$1")
	launch "trustgate-$1" "$DIR/bin/trustgate" serve \
		--listen "127.0.0.1:$port" \
		--public-url "http://127.0.0.1:$LB_PORT" \
		--data-dir "$DIR/trustgate-$1" \
		--database "$(pg_url "$STORE_DB")" \
		--master-key "$(cat "$DIR/master.key")" \
		--spicedb-endpoint "dns://127.0.0.1:$DNS_PORT/spicedb.cluster.test:$SPICEDB_GRPC" \
		--spicedb-token "$(cat "$DIR/spicedb.key")" \
		--spicedb-ca-file "$DIR/tls/ca.pem" \
		--metrics-listen "127.0.0.1:$(trustgate_metrics "$1")" \
		--trusted-proxies 127.0.0.1
	wait_ready "trustgate-$1" "http://127.0.0.1:$port"
}

start_haproxy() {
	{
		cat <<CFG
global
    maxconn 8192
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    # A request that could not be sent to a replica (refused connection) goes to another one;
    # one that reached a replica is never sent twice.
    option redispatch
    retries 3
    retry-on conn-failure
frontend trustgate
    bind 127.0.0.1:$LB_PORT
    option forwardfor
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
CFG
		for i in $NODES; do
			echo "    server trustgate-$i 127.0.0.1:$(trustgate_port "$i") check"
		done
	} >"$DIR/haproxy.cfg"
	haproxy -c -q -f "$DIR/haproxy.cfg" || die "HAProxy refused $DIR/haproxy.cfg"
	launch haproxy haproxy -db -f "$DIR/haproxy.cfg"
	wait_ready haproxy "http://127.0.0.1:$LB_PORT"
}

write_env() {
	cat >"$DIR/cluster.env" <<ENV
TRUSTGATE_CLUSTER_URL=http://127.0.0.1:$LB_PORT
TRUSTGATE_CLUSTER_DATABASE=$(pg_url "$STORE_DB")
TRUSTGATE_CLUSTER_REPLICAS=$(for i in $NODES; do printf 'http://127.0.0.1:%s ' "$(trustgate_port "$i")"; done)
TRUSTGATE_CLUSTER_SCRIPT=$REPO/deploy/local-cluster/cluster.sh
TRUSTGATE_CLUSTER_BINARY=$DIR/bin/trustgate
ENV
}

stop() { # NAME [SIGNAL]
	local f; f=$(pidfile "$1")
	[ -f "$f" ] || return 0
	local pid; pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill "-${2:-TERM}" "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

case $CMD in
up)
	need haproxy haproxy
	need dnsmasq dnsmasq-base
	need psql postgresql-client
	need openssl openssl
	need curl curl
	mkdir -p "$DIR/logs" "$DIR/run"
	build
	make_ca
	secrets
	create_databases
	start_dns
	for i in $NODES; do start_spicedb "$i"; done
	# The first replica migrates the store and writes the schema; the others follow.
	for i in $NODES; do start_trustgate "$i"; done
	start_haproxy
	write_env
	log "up: http://127.0.0.1:$LB_PORT (HAProxy) -> trustgate on ports $(trustgate_port 1)-$(trustgate_port 3) -> SpiceDB on 127.0.0.11-13:$SPICEDB_GRPC; see $DIR/cluster.env"
	;;
down)
	for name in haproxy trustgate-1 trustgate-2 trustgate-3 spicedb-1 spicedb-2 spicedb-3 dnsmasq; do stop "$name"; done
	if command -v psql >/dev/null 2>&1; then
		for db in "$STORE_DB" "$SPICEDB_DB"; do psql "$PG" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
	fi
	log "down: nothing of $DIR runs"
	;;
kill)
	[ -n "$NAME" ] || usage
	running "$NAME" || die "$NAME does not run"
	kill -KILL "$(cat "$(pidfile "$NAME")")"
	rm -f "$(pidfile "$NAME")"
	;;
start)
	case $NAME in
	trustgate-[123]) start_trustgate "${NAME#trustgate-}" ;;
	spicedb-[123]) start_spicedb "${NAME#spicedb-}" ;;
	haproxy) start_haproxy ;;
	*) usage ;;
	esac
	;;
status)
	for name in haproxy trustgate-1 trustgate-2 trustgate-3 spicedb-1 spicedb-2 spicedb-3 dnsmasq; do
		if running "$name"; then echo "$name running (pid $(cat "$(pidfile "$name")"))"; else echo "$name stopped"; fi
	done
	;;
*) usage ;;
esac
