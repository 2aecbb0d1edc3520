#!/usr/bin/env bash
# Start one Cassandra node of the StatefulSet (official cassandra image).
#
#   start.sh          size the heap, configure auth, start Cassandra (PID 1 stays this script)
#   start.sh heap     print the computed MAX_HEAP_SIZE / HEAP_NEWSIZE and exit (tests, debugging)
#   start.sh configure  only switch $CASSANDRA_CONF/cassandra.yaml to password auth
#   start.sh topology   print the rack, seeds and replace option this pod would start with
#
# Heap: cassandra-env.sh sizes the heap from the *host's* RAM (/proc/meminfo), which in a pod is
# the node's memory, not the container's limit, so the JVM would be OOM-killed. Here the limit
# comes from MEMORY_LIMIT (downward API resourceFieldRef limits.memory, bytes), else cgroup v2
# memory.max, else cgroup v1 memory.limit_in_bytes. The heap is half the limit (the rest is
# off-heap: memtables, bloom filters, direct buffers, page cache), at most 16G; HEAP_NEWSIZE a
# quarter of the heap. MAX_HEAP_SIZE / HEAP_NEWSIZE from .cassandra.env are upper bounds: a
# smaller value wins, a larger one is lowered to fit the limit. Without any limit the env values
# are used as given.
#
# Auth: the official image has no setting for credentials; cassandra.yaml is switched to
# PasswordAuthenticator/CassandraAuthorizer here, which starts with the default superuser
# cassandra/cassandra. The last ordinal (all nodes are up by then: OrderedReady) replaces it with
# CASSANDRA_USER/CASSANDRA_PASSWORD from the Secret, raises system_auth to CASSANDRA_AUTH_RF
# replicas and repairs it, then disables the default login (see bootstrap_auth).
#
# Topology: the rack is the zone of the pod's node (NODE_ZONE, downward API of the pod label
# topology.kubernetes.io/zone, which the PodTopologyLabels admission copies from the node), else
# CASSANDRA_RACK of .cassandra.env, as at the node's first boot ($RACK_FILE on its volume: a
# node never changes rack). The docker entrypoint writes it with CASSANDRA_DC into
# cassandra-rackdc.properties for GossipingPropertyFileSnitch.
# Replacing a node whose volume was lost: a line "<pod name>=<IP of the dead node>" (key = pod
# name) in the ConfigMap cassandra-replace, mounted at $REPLACE_DIR, makes this pod start with
# -Dcassandra.replace_address_first_boot=<IP>, and drops this pod from its own seed list (a
# seed never bootstraps, so it could not stream the dead node's data).
set -euo pipefail

CGROUP_ROOT=${CGROUP_ROOT:-/sys/fs/cgroup}
MIB=$((1024 * 1024))
HEAP_CAP_MIB=$((16 * 1024))
MIN_LIMIT_MIB=1024

log() { echo "[start.sh] $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# "4G", "800M", "512m", "1048576k", "2147483648" -> MiB (rounded down).
to_mib() {
	local value=${1,,} number unit
	[[ $value =~ ^([0-9]+)([kmgt]?)i?b?$ ]] || die "$2=$1 is not a size like 4G or 800M"
	number=${BASH_REMATCH[1]}
	unit=${BASH_REMATCH[2]}
	case $unit in
	"") echo $((number / MIB)) ;;
	k) echo $((number / 1024)) ;;
	m) echo "$number" ;;
	g) echo $((number * 1024)) ;;
	t) echo $((number * 1024 * 1024)) ;;
	esac
}

# The container's memory limit in bytes, or nothing when unlimited.
memory_limit_bytes() {
	local value
	if [[ -n ${MEMORY_LIMIT:-} ]]; then
		[[ $MEMORY_LIMIT =~ ^[0-9]+$ ]] || die "MEMORY_LIMIT=$MEMORY_LIMIT is not a byte count"
		echo "$MEMORY_LIMIT"
	elif [[ -r $CGROUP_ROOT/memory.max ]]; then
		value=$(<"$CGROUP_ROOT/memory.max")
		[[ $value == max ]] || echo "$value"
	elif [[ -r $CGROUP_ROOT/memory/memory.limit_in_bytes ]]; then
		value=$(<"$CGROUP_ROOT/memory/memory.limit_in_bytes")
		# cgroup v1 reports "unlimited" as a huge page-aligned number (about 2^63).
		((value >= 1 << 60)) || echo "$value"
	fi
}

# Sets and exports MAX_HEAP_SIZE and HEAP_NEWSIZE (cassandra-env.sh wants both or neither).
size_heap() {
	local limit limit_mib heap_mib new_mib
	limit=$(memory_limit_bytes)
	if [[ -z $limit ]]; then
		if [[ -n ${MAX_HEAP_SIZE:-} && -n ${HEAP_NEWSIZE:-} ]]; then
			log "no memory limit found: heap from the env file (MAX_HEAP_SIZE=$MAX_HEAP_SIZE)"
			export MAX_HEAP_SIZE HEAP_NEWSIZE
			return
		fi
		die "no memory limit (MEMORY_LIMIT, cgroup memory.max) and no MAX_HEAP_SIZE/HEAP_NEWSIZE"
	fi
	limit_mib=$((limit / MIB))
	((limit_mib >= MIN_LIMIT_MIB)) ||
		die "memory limit ${limit_mib}M is too small for Cassandra (at least ${MIN_LIMIT_MIB}M)"
	heap_mib=$((limit_mib / 2))
	((heap_mib <= HEAP_CAP_MIB)) || heap_mib=$HEAP_CAP_MIB
	if [[ -n ${MAX_HEAP_SIZE:-} ]]; then
		local wanted
		wanted=$(to_mib "$MAX_HEAP_SIZE" MAX_HEAP_SIZE) || exit 1
		if ((wanted < heap_mib)); then
			heap_mib=$wanted
		elif ((wanted > heap_mib)); then
			log "MAX_HEAP_SIZE=$MAX_HEAP_SIZE does not fit the ${limit_mib}M limit: using ${heap_mib}M"
		fi
	fi
	new_mib=$((heap_mib / 4))
	if [[ -n ${HEAP_NEWSIZE:-} ]]; then
		local wanted_new
		wanted_new=$(to_mib "$HEAP_NEWSIZE" HEAP_NEWSIZE) || exit 1
		((wanted_new >= new_mib)) || new_mib=$wanted_new
	fi
	export MAX_HEAP_SIZE="${heap_mib}M" HEAP_NEWSIZE="${new_mib}M"
	log "memory limit ${limit_mib}M: MAX_HEAP_SIZE=$MAX_HEAP_SIZE HEAP_NEWSIZE=$HEAP_NEWSIZE"
}

# Replace a top-level cassandra.yaml setting, including an indented block under it
# (Cassandra 5 writes "authenticator:\n  class_name : ...").
set_yaml() {
	local file=$1 key=$2 value=$3 tmp
	tmp=$(mktemp)
	awk -v key="$key" -v value="$value" '
		skipping && /^[ \t]/ { next }
		{ skipping = 0 }
		$0 ~ "^" key ":" { print key ": " value; skipping = 1; found = 1; next }
		{ print }
		END { if (!found) print key ": " value }
	' "$file" >"$tmp"
	cat "$tmp" >"$file"
	rm -f "$tmp"
}

REPLACE_DIR=${REPLACE_DIR:-/etc/cassandra-replace}
# The rack chosen at first boot, kept on the data volume: NODE_ZONE appears only where the
# PodTopologyLabels admission copies the zone to the pod (on by default from Kubernetes 1.35),
# and Cassandra refuses to start in another rack than the one it stored (found by review).
RACK_FILE=${RACK_FILE:-/var/lib/cassandra/hundi-rack}

# Sets CASSANDRA_RACK, CASSANDRA_SEEDS and JVM_EXTRA_OPTS for this pod (see the header).
topology() {
	local rack=${NODE_ZONE:-}
	[[ -n $rack ]] || rack=${CASSANDRA_RACK:-}
	if [[ -s $RACK_FILE ]]; then
		local first
		first=$(tr -d ' \n' <"$RACK_FILE")
		if [[ -n $rack && $first != "$rack" ]]; then
			log "warning: this node's rack is $first since its first boot; keeping it, not $rack (a node never changes rack: replace it to move it)"
		fi
		rack=$first
	elif [[ -n $rack && -d ${RACK_FILE%/*} && -w ${RACK_FILE%/*} ]]; then
		echo "$rack" >"$RACK_FILE"
	fi
	[[ -z $rack ]] || export CASSANDRA_RACK=$rack
	local me=${HOSTNAME:-} address=""
	if [[ -n $me && -r $REPLACE_DIR/$me ]]; then
		address=$(tr -d ' \n' <"$REPLACE_DIR/$me")
	fi
	if [[ -n $address ]]; then
		[[ $address =~ ^[0-9A-Fa-f:.]+$ ]] || die "$REPLACE_DIR/$me=$address is not an IP address"
		local seed kept=()
		IFS=, read -ra seeds <<<"${CASSANDRA_SEEDS:-}"
		for seed in "${seeds[@]}"; do
			seed=${seed// /}
			[[ -z $seed || $seed == "$me" || $seed == "$me".* ]] || kept+=("$seed")
		done
		((${#kept[@]} > 0)) || die "replacing $me needs another seed to join through"
		CASSANDRA_SEEDS=$(
			IFS=,
			echo "${kept[*]}"
		)
		export CASSANDRA_SEEDS
		export JVM_EXTRA_OPTS="${JVM_EXTRA_OPTS:-} -Dcassandra.replace_address_first_boot=$address"
		log "replacing the dead node $address (seeds for this start: $CASSANDRA_SEEDS)"
	fi
	log "rack ${CASSANDRA_RACK:-?} in ${CASSANDRA_DC:-?}"
}

cql_quote() { printf "'%s'" "${1//\'/\'\'}"; }

# cqlsh with credentials in a private file, never on the command line (ps shows argv), over
# loopback (rpc_address is 0.0.0.0; the pod's own IP may be subject to its NetworkPolicy).
cql_as() {
	local user=$1 password=$2 rc=0
	local rc_file
	rc_file=$(mktemp)
	chmod 600 "$rc_file"
	printf '[authentication]\nusername = %s\npassword = %s\n' "$user" "$password" >"$rc_file"
	cqlsh --cqlshrc="$rc_file" --request-timeout=60 127.0.0.1 "${@:3}" 2>&1 || rc=$?
	rm -f "$rc_file"
	return "$rc"
}

bootstrap_auth() {
	local user=${CASSANDRA_USER:?CASSANDRA_USER is not set (Secret cassandra-admin)}
	local password=${CASSANDRA_PASSWORD:?CASSANDRA_PASSWORD is not set (Secret cassandra-admin)}
	local rf=${CASSANDRA_AUTH_RF:-1} dc=${CASSANDRA_DC:-datacenter1}
	local probe="SELECT release_version FROM system.local" admin_user admin_password tries=0
	log "auth: waiting for CQL"
	while :; do
		if cql_as "$user" "$password" -e "$probe" >/dev/null; then
			admin_user=$user admin_password=$password
			break
		elif cql_as cassandra cassandra -e "$probe" >/dev/null; then
			admin_user=cassandra admin_password=cassandra
			break
		fi
		tries=$((tries + 1))
		if ((tries % 24 == 0)); then
			log "auth: neither $user (Secret) nor the default superuser can log in yet; if the" \
				"Secret's password was changed after the first start, ALTER ROLE it with cqlsh"
		fi
		sleep 5
	done
	local statements
	statements="ALTER KEYSPACE system_auth WITH replication = {'class': 'NetworkTopologyStrategy', $(cql_quote "$dc"): $rf};"
	if [[ $user == cassandra ]]; then
		statements+=" ALTER ROLE cassandra WITH PASSWORD = $(cql_quote "$password");"
	else
		statements+=" CREATE ROLE IF NOT EXISTS $(cql_quote "$user") WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = $(cql_quote "$password");"
	fi
	echo "$statements" | cql_as "$admin_user" "$admin_password" >/dev/null || {
		log "auth: setting up role $user failed"
		return 1
	}
	nodetool repair --full system_auth >/dev/null || log "auth: nodetool repair system_auth failed"
	if [[ $user != cassandra ]]; then
		# The well-known default login goes: a random password, no login, no superuser.
		local random
		random=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
		echo "ALTER ROLE cassandra WITH PASSWORD = '$random' AND SUPERUSER = false AND LOGIN = false;" |
			cql_as "$user" "$password" >/dev/null || log "auth: disabling the default role failed"
	fi
	log "auth: role $user ready, system_auth replicated $rf times in $dc"
}

configure() {
	local conf=${CASSANDRA_CONF:-/etc/cassandra}/cassandra.yaml
	[[ -w $conf ]] || die "$conf is not writable (mount an emptyDir seeded from the image there)"
	set_yaml "$conf" authenticator PasswordAuthenticator
	set_yaml "$conf" authorizer CassandraAuthorizer
	set_yaml "$conf" role_manager CassandraRoleManager
}

ordinal() { [[ ${HOSTNAME:-} =~ -([0-9]+)$ ]] && echo "${BASH_REMATCH[1]}"; }

main() {
	case ${1:-start} in
	heap)
		size_heap
		echo "MAX_HEAP_SIZE=$MAX_HEAP_SIZE HEAP_NEWSIZE=$HEAP_NEWSIZE"
		;;
	configure) configure ;;
	topology)
		topology
		echo "CASSANDRA_RACK=${CASSANDRA_RACK:-} CASSANDRA_SEEDS=${CASSANDRA_SEEDS:-} JVM_EXTRA_OPTS=${JVM_EXTRA_OPTS:-}"
		;;
	start)
		size_heap
		topology
		configure
		docker-entrypoint.sh cassandra -f &
		local pid=$!
		trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
		local last=$((${CASSANDRA_REPLICAS:-1} - 1))
		if [[ $(ordinal) == "$last" ]]; then
			bootstrap_auth &
		fi
		local rc=0
		wait "$pid" || rc=$?
		# A TERM interrupts the first wait; wait again for Cassandra's own shutdown.
		while kill -0 "$pid" 2>/dev/null; do wait "$pid" || rc=$?; done
		exit "$rc"
		;;
	*) die "usage: start.sh [start|heap|configure]" ;;
	esac
}

main "$@"
