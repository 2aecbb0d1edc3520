#!/usr/bin/env bash
# Start KairosDB with its config rendered from the environment (image wunder/kairosdb).
#
#   start.sh            render $KAIROSDB_RUN_DIR/kairosdb.conf, then exec the JVM there
#   start.sh render     only render the file and print its path (tests, debugging)
#
# KairosDB loads every *.conf/*.properties of its working directory as overrides, so it runs in
# a directory that holds only the rendered file. The file holds the Cassandra password: it is
# written with mode 600 into a runtime directory (an emptyDir in Kubernetes), never the image.
set -euo pipefail

KAIROSDB_HOME=${KAIROSDB_HOME:-/opt/kairosdb}
KAIROSDB_RUN_DIR=${KAIROSDB_RUN_DIR:-/run/kairosdb}
KAIROSDB_PORT=${KAIROSDB_PORT:-8080}
KAIROSDB_QUEUE_PATH=${KAIROSDB_QUEUE_PATH:-/var/lib/kairosdb/queue}
KAIROSDB_CASSANDRA_HOSTS=${KAIROSDB_CASSANDRA_HOSTS:-cassandra:9042}
KAIROSDB_KEYSPACE=${KAIROSDB_KEYSPACE:-kairosdb}
KAIROSDB_REPLICATION=${KAIROSDB_REPLICATION:-"{'class': 'SimpleStrategy', 'replication_factor': 1}"}
KAIROSDB_READ_CONSISTENCY=${KAIROSDB_READ_CONSISTENCY:-ONE}
KAIROSDB_WRITE_CONSISTENCY=${KAIROSDB_WRITE_CONSISTENCY:-QUORUM}
# Container-aware heap: a share of the memory limit instead of a fixed -Xmx.
KAIROSDB_JAVA_OPTS=${KAIROSDB_JAVA_OPTS:--XX:MaxRAMPercentage=60}

die() {
	echo "[kairosdb] error: $*" >&2
	exit 1
}

# A HOCON double-quoted string.
quote() {
	local value=${1//\\/\\\\}
	printf '"%s"' "${value//\"/\\\"}"
}

[[ $KAIROSDB_PORT =~ ^[0-9]+$ ]] || die "KAIROSDB_PORT=$KAIROSDB_PORT is not a port number"
case $KAIROSDB_READ_CONSISTENCY$KAIROSDB_WRITE_CONSISTENCY in
*[!A-Z_]*) die "KAIROSDB_READ/WRITE_CONSISTENCY must be Cassandra levels like ONE or QUORUM" ;;
esac

render() {
	local hosts="" host auth=""
	IFS=, read -ra host_list <<<"$KAIROSDB_CASSANDRA_HOSTS"
	for host in "${host_list[@]}"; do
		host=${host// /}
		[[ -n $host ]] || continue
		hosts+="${hosts:+, }$(quote "$host")"
	done
	[[ -n $hosts ]] || die "KAIROSDB_CASSANDRA_HOSTS is empty (host:port, comma separated)"
	if [[ -n ${CASSANDRA_USER:-} || -n ${CASSANDRA_PASSWORD:-} ]]; then
		[[ -n ${CASSANDRA_USER:-} && -n ${CASSANDRA_PASSWORD:-} ]] ||
			die "set both CASSANDRA_USER and CASSANDRA_PASSWORD, or neither"
		auth="auth.user_name: $(quote "$CASSANDRA_USER")
      auth.password: $(quote "$CASSANDRA_PASSWORD")"
	fi
	mkdir -p "$KAIROSDB_RUN_DIR" "$KAIROSDB_QUEUE_PATH"
	local conf=$KAIROSDB_RUN_DIR/kairosdb.conf
	rm -f "$conf"
	(
		umask 077
		cat >"$conf" <<CONF
kairosdb: {
  service.datastore: "org.kairosdb.datastore.cassandra.CassandraModule"
  service.telnet: "<disabled>"
  jetty.port: $KAIROSDB_PORT
  datastore.cassandra: {
    # Cassandra 4+ rejects KairosDB's default "WITH COMPACT STORAGE" for data_points.
    table_create_with.data_points: ""
    # Keep retrying Cassandra instead of exiting while it starts; the health check stays
    # failing (pod not ready) until the datastore answers.
    start_async: true
    write_cluster: {
      keyspace: $(quote "$KAIROSDB_KEYSPACE")
      replication: $(quote "$KAIROSDB_REPLICATION")
      cql_host_list: [$hosts]
      read_consistency_level: $(quote "$KAIROSDB_READ_CONSISTENCY")
      write_consistency_level: $(quote "$KAIROSDB_WRITE_CONSISTENCY")
      $auth
    }
  }
  queue_processor.queue_path: $(quote "$KAIROSDB_QUEUE_PATH")
}
CONF
	)
	echo "$conf"
}

case ${1:-start} in
render) render ;;
start)
	conf=$(render)
	cd "$KAIROSDB_RUN_DIR"
	# shellcheck disable=SC2086 # KAIROSDB_JAVA_OPTS holds several options
	exec java $KAIROSDB_JAVA_OPTS \
		--add-opens=java.base/java.lang=ALL-UNNAMED \
		--add-opens=java.base/java.util=ALL-UNNAMED \
		-Dlogback.configurationFile="$KAIROSDB_HOME/logback.xml" \
		-cp "$KAIROSDB_HOME/lib/*" \
		org.kairosdb.core.Main -c run -p "$conf"
	;;
*) die "usage: start.sh [start|render]" ;;
esac
