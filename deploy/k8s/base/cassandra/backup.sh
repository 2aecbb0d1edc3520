#!/usr/bin/env bash
# Back up one keyspace of this Cassandra node to a directory off the node, and restore it.
# The same script runs in the StatefulSet's cassandra container (the backup CronJobs exec it
# there: nodetool reaches the node's loopback-only JMX) and on the local test node
# (tests/stores/cassandra/test_backup_restore.py, NODETOOL="python services/manage.py nodetool").
#
#   backup.sh backup <keyspace> <destination>
#       nodetool flush + snapshot -t <tag>, copy every table's snapshot into
#       <destination>/<table>/ with SHA256SUMS and a BACKUP description, clear the snapshot
#       (also on failure). <destination> must not exist; it appears complete or not at all
#       (the copy is written to <destination>.partial and renamed last).
#   backup.sh restore <source> <keyspace>
#       verify SHA256SUMS, copy each table's files to a staging directory beside <source> and
#       `nodetool import` them into the live table of <keyspace>. The tables must exist (hundi
#       creates them when a writer opens the store; else apply <source>/<table>/schema.cql with
#       cqlsh). The backup stays intact, and importing the same backup twice adds no rows (same
#       keys, same write timestamps). Needs free space for one copy of the backup.
#   backup.sh prune <directory> <keep>
#       delete all but the <keep> newest complete backups directly under <directory>.
#   backup.sh ship <keyspace> <root> <keep>
#       what the CronJobs run: backup to <root>/<this host>/<keyspace>/<UTC time>, then prune
#       <root>/<this host>/<keyspace> to the <keep> newest.
#
# NODETOOL (default: nodetool) is the command, word-split, that talks to the node; BACKUP_TAG
# (default: hundi-<UTC time>) names the snapshot. Exit codes: 0 done, 1 failed, 2 bad usage.
# Every error is one line on stderr; nothing here reads or prints credentials.
set -euo pipefail

NODETOOL=${NODETOOL:-nodetool}
read -r -a NODETOOL_CMD <<<"$NODETOOL"

log() { echo "[backup.sh] $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
usage() {
	log "usage: backup.sh backup <keyspace> <destination> | restore <source> <keyspace> | prune <directory> <keep> | ship <keyspace> <root> <keep>"
	exit 2
}

check_name() {
	[[ $1 =~ ^[A-Za-z0-9_]{1,48}$ ]] || {
		log "error: '$1' is not a keyspace name (letters, digits, underscore)"
		exit 2
	}
}

# nodetool with its output captured; on failure its last line is the one-line error.
OUTPUT=""
run_nodetool() {
	local rc=0
	OUTPUT=$("${NODETOOL_CMD[@]}" "$@" 2>&1) || rc=$?
	if ((rc != 0)); then
		local last
		last=$(grep -v '^\s*$' <<<"$OUTPUT" | grep -iE 'error|exception|failed' | head -n 1 || true)
		[[ -n $last ]] || last=$(grep -v '^\s*$' <<<"$OUTPUT" | tail -n 1 || true)
		die "nodetool $1 failed (exit $rc): ${last:-no output}"
	fi
}

# "table<TAB>directory" for each data directory of each table of the keyspace.
table_dirs() {
	run_nodetool datapaths -- "$1"
	awk '/^[ \t]*Table:/ {table = $2} /^[ \t]*\// {sub(/^[ \t]+/, ""); print table "\t" $0}' <<<"$OUTPUT"
}

backup() {
	local keyspace=$1 destination=$2 tag partial table dir snapshot count=0
	check_name "$keyspace"
	tag=${BACKUP_TAG:-hundi-$(date -u +%Y%m%dT%H%M%SZ)}
	[[ $tag =~ ^[A-Za-z0-9_.-]+$ ]] || {
		log "error: BACKUP_TAG='$tag' is not a snapshot name (letters, digits, . _ -)"
		exit 2
	}
	[[ ! -e $destination ]] || die "$destination already exists; a backup never overwrites another"
	partial="$destination.partial"
	rm -rf -- "$partial"
	mkdir -p -- "$partial" || die "cannot create $partial"

	local tables
	tables=$(table_dirs "$keyspace")
	[[ -n $tables ]] || die "keyspace $keyspace has no tables on this node (does it exist?)"
	run_nodetool flush -- "$keyspace"
	run_nodetool snapshot -t "$tag" -- "$keyspace"
	# shellcheck disable=SC2064 # the tag and keyspace are fixed now
	trap "\"\${NODETOOL_CMD[@]}\" clearsnapshot -t '$tag' -- '$keyspace' >/dev/null 2>&1 || log 'warning: could not clear snapshot $tag'" EXIT

	while IFS=$'\t' read -r table dir; do
		snapshot="$dir/snapshots/$tag"
		[[ -d $snapshot ]] || continue # a table without data on this node
		mkdir -p -- "$partial/$table"
		cp -n -- "$snapshot"/* "$partial/$table/" || die "copying $snapshot failed"
		count=$((count + 1))
	done <<<"$tables"
	((count > 0)) || die "snapshot $tag of $keyspace produced no files"

	(cd "$partial" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum >SHA256SUMS) ||
		die "checksumming $partial failed"
	{
		echo "keyspace=$keyspace"
		echo "tag=$tag"
		echo "host=$HOSTNAME"
		echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "tables=$(cd "$partial" && find . -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | paste -sd, -)"
	} >"$partial/BACKUP"
	mv -- "$partial" "$destination" || die "renaming $partial to $destination failed"
	run_nodetool clearsnapshot -t "$tag" -- "$keyspace"
	trap - EXIT
	log "ok: $keyspace -> $destination ($count tables, $(du -sh "$destination" | cut -f1), snapshot $tag cleared)"
}

restore() {
	local source=$1 keyspace=$2 table dir count=0
	check_name "$keyspace"
	[[ -f $source/BACKUP && -f $source/SHA256SUMS ]] ||
		die "$source is not a complete backup (no BACKUP/SHA256SUMS; .partial backups are unfinished)"
	(cd "$source" && sha256sum --check --quiet --strict SHA256SUMS >/dev/null 2>&1) ||
		die "$source is damaged: a file does not match SHA256SUMS"
	local tables
	tables=$(table_dirs "$keyspace")
	for dir in "$source"/*/; do
		table=$(basename "$dir")
		grep -q "^$table"$'\t' <<<"$tables" ||
			die "table $keyspace.$table does not exist: create the schema first (open the store with hundi, or cqlsh -f $dir""schema.cql)"
	done
	# Cassandra imports only files whose path reads .../<keyspace>/<table>/: each table is
	# copied to <staging>/<keyspace>/<table> next to the backup (copies, not hard links: the
	# node may rewrite a component of a live sstable, and the backup must stay as it was), and
	# import moves the files from there into the table. A file still there was not imported.
	local staging left
	staging=$(mktemp -d "$(dirname -- "$source")/.restore-XXXXXX") ||
		die "cannot create a staging directory next to $source"
	# shellcheck disable=SC2064 # the path is fixed now
	trap "rm -rf -- '$staging'" EXIT
	for dir in "$source"/*/; do
		table=$(basename "$dir")
		mkdir -p -- "$staging/$keyspace/$table"
		find "$dir" -maxdepth 1 -type f ! -name manifest.json ! -name schema.cql \
			-exec cp -t "$staging/$keyspace/$table/" -- {} + || die "staging $dir failed"
		run_nodetool import -- "$keyspace" "$table" "$staging/$keyspace/$table"
		left=$(find "$staging/$keyspace/$table" -name '*-Data.db' | wc -l)
		((left == 0)) || die "nodetool import left $left sstables of $keyspace.$table unimported (see the node's log)"
		count=$((count + 1))
	done
	rm -rf -- "$staging"
	trap - EXIT
	((count > 0)) || die "$source holds no table"
	log "ok: $source -> $keyspace ($count tables imported)"
}

prune() {
	local directory=$1 keep=$2
	[[ $keep =~ ^[0-9]+$ ]] || {
		log "error: keep='$keep' is not a number"
		exit 2
	}
	[[ -d $directory ]] || die "$directory is not a directory"
	local backups=() path
	while IFS= read -r path; do
		backups+=("$path")
	done < <(find "$directory" -mindepth 2 -maxdepth 2 -name BACKUP -printf '%h\n' | sort -r)
	local i
	for ((i = keep; i < ${#backups[@]}; i++)); do
		rm -rf -- "${backups[$i]}" || die "cannot delete ${backups[$i]}"
		log "pruned ${backups[$i]}"
	done
	# an unfinished copy is never restorable: remove those older than a day
	find "$directory" -mindepth 1 -maxdepth 1 -name '*.partial' -mtime +0 -exec rm -rf -- {} + || true
}

ship() {
	local keyspace=$1 root=$2 keep=$3 directory
	check_name "$keyspace"
	[[ $keep =~ ^[1-9][0-9]*$ ]] || {
		log "error: keep='$keep' is not a positive number"
		exit 2
	}
	[[ -d $root ]] || die "$root is not a directory (is the backup volume mounted?)"
	directory="$root/$HOSTNAME/$keyspace"
	mkdir -p -- "$directory" || die "cannot create $directory"
	backup "$keyspace" "$directory/$(date -u +%Y%m%dT%H%M%SZ)"
	prune "$directory" "$keep"
}

case ${1:-} in
backup)
	(($# == 3)) || usage
	backup "$2" "$3"
	;;
restore)
	(($# == 3)) || usage
	restore "$2" "$3"
	;;
prune)
	(($# == 3)) || usage
	prune "$2" "$3"
	;;
ship)
	(($# == 4)) || usage
	ship "$2" "$3" "$4"
	;;
*) usage ;;
esac
