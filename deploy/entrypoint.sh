#!/usr/bin/env bash
# Container entrypoint of the Writech image: one Bytewax process of the
# dataflow, following the conventions of the Bytewax Helm chart's pods.
#
#   entrypoint.sh run        run dataflow.py (the default command)
#   entrypoint.sh hostfile   write the cluster's hostfile (init container)
#   entrypoint.sh CMD ARG... run any other command, e.g. `writech init-db`
#
# `run` reads the variables the chart gives its pods:
#   BYTEWAX_PYTHON_FILE_PATH     the flow file (the image's dataflow.py)
#   BYTEWAX_WORKDIR              directory to run in
#   BYTEWAX_WORKERS_PER_PROCESS  worker threads in this process (default 1)
#   BYTEWAX_POD_NAME, BYTEWAX_STATEFULSET_NAME
#                                this process's id is the pod's ordinal:
#                                writech-2 of StatefulSet writech is process 2
#   BYTEWAX_HOSTFILE_PATH        one host:port line per process, in id order
#   BYTEWAX_RECOVERY_DIRECTORY   recovery store (unset: no recovery)
#   BYTEWAX_RECOVERY_PARTS       partitions to create in an empty store
#   BYTEWAX_SNAPSHOT_INTERVAL, BYTEWAX_RECOVERY_BACKUP_INTERVAL  seconds
#   BYTEWAX_RECOVERY_WAIT        seconds a process > 0 waits for process 0
#                                to create the store (default 300)
# Without BYTEWAX_POD_NAME it runs a single process. The recovery store is
# one directory shared by every process (one volume mounted in every pod):
# process 0 creates it, once, with all its partitions; the others wait for
# it. An existing store is never touched.
#
# `hostfile` writes BYTEWAX_HOSTFILE_PATH with BYTEWAX_REPLICAS lines
# STATEFULSET-i.SERVICE.NAMESPACE.svc.CLUSTER_DOMAIN:PORT, from
# BYTEWAX_STATEFULSET_NAME, BYTEWAX_SERVICE_NAME (default: the StatefulSet's
# name), BYTEWAX_NAMESPACE, BYTEWAX_CLUSTER_DOMAIN (default cluster.local)
# and BYTEWAX_PROCESS_PORT (default 9999).
set -euo pipefail

log() { printf 'entrypoint: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 2
}
need() { [ -n "${!1:-}" ] || die "$1 is not set"; }
is_count() { [[ "$1" =~ ^[0-9]+$ ]]; }
positive() {
    if ! is_count "$2" || [ "$2" -lt 1 ]; then
        die "$1 must be a positive integer, not '$2'"
    fi
}

write_hostfile() {
    need BYTEWAX_HOSTFILE_PATH
    need BYTEWAX_STATEFULSET_NAME
    need BYTEWAX_NAMESPACE
    need BYTEWAX_REPLICAS
    positive BYTEWAX_REPLICAS "$BYTEWAX_REPLICAS"
    local name=$BYTEWAX_STATEFULSET_NAME
    local domain="${BYTEWAX_SERVICE_NAME:-$name}.$BYTEWAX_NAMESPACE.svc.${BYTEWAX_CLUSTER_DOMAIN:-cluster.local}"
    local port=${BYTEWAX_PROCESS_PORT:-9999}
    local ordinal
    for ((ordinal = 0; ordinal < BYTEWAX_REPLICAS; ordinal++)); do
        printf '%s-%d.%s:%s\n' "$name" "$ordinal" "$domain" "$port"
    done >"$BYTEWAX_HOSTFILE_PATH"
    log "wrote $BYTEWAX_REPLICAS address(es) to $BYTEWAX_HOSTFILE_PATH"
}

# This process's id: the StatefulSet ordinal at the end of the pod's name.
process_id() {
    need BYTEWAX_STATEFULSET_NAME
    local ordinal=${BYTEWAX_POD_NAME#"$BYTEWAX_STATEFULSET_NAME"-}
    if [ "$ordinal" = "$BYTEWAX_POD_NAME" ] || ! is_count "$ordinal"; then
        die "pod '$BYTEWAX_POD_NAME' is not a pod of StatefulSet '$BYTEWAX_STATEFULSET_NAME'"
    fi
    printf '%d' "$((10#$ordinal))"
}

# HOSTS: the hostfile's addresses, blank lines and spaces dropped.
read_hosts() {
    need BYTEWAX_HOSTFILE_PATH
    [ -r "$BYTEWAX_HOSTFILE_PATH" ] || die "cannot read hostfile $BYTEWAX_HOSTFILE_PATH"
    HOSTS=()
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line//[[:space:]]/}
        if [ -n "$line" ]; then HOSTS+=("$line"); fi
    done <"$BYTEWAX_HOSTFILE_PATH"
}

partitions_in() {
    local parts=("$1"/part-*.sqlite3)
    [ -e "${parts[0]}" ] && printf '%d' "${#parts[@]}" || printf '0'
}

# Create the recovery store once (process 0), or wait until it exists.
ensure_recovery_store() {
    local id=$1 dir=$BYTEWAX_RECOVERY_DIRECTORY
    local wanted=${BYTEWAX_RECOVERY_PARTS:-1}
    positive BYTEWAX_RECOVERY_PARTS "$wanted"
    mkdir -p "$dir"
    local found
    found=$(partitions_in "$dir")
    if [ "$found" = 0 ] && [ "$id" = 0 ]; then
        # Created aside and moved in, so waiting processes never see half a store.
        local staging="$dir/.creating"
        rm -rf "$staging"
        writech recovery init --dir "$staging" --partitions "$wanted"
        mv "$staging"/part-*.sqlite3 "$dir"/
        rmdir "$staging"
        found=$wanted
    fi
    local waited=0 patience=${BYTEWAX_RECOVERY_WAIT:-300}
    while [ "$found" -lt "$wanted" ]; do
        [ "$waited" -lt "$patience" ] ||
            die "no complete recovery store in $dir after ${patience}s (process 0 creates it)"
        ((waited % 10 == 0)) && log "waiting for process 0 to create the recovery store in $dir"
        sleep 1
        waited=$((waited + 1))
        found=$(partitions_in "$dir")
    done
    [ "$found" = "$wanted" ] ||
        die "$dir holds $found recovery partitions but BYTEWAX_RECOVERY_PARTS is $wanted;" \
            "the count is fixed when the store is created (docs/operations.md, Scaling)"
}

run() {
    need BYTEWAX_PYTHON_FILE_PATH
    local id=0 count=1
    local args=(-m bytewax.run "$BYTEWAX_PYTHON_FILE_PATH" -w "${BYTEWAX_WORKERS_PER_PROCESS:-1}")
    if [ -n "${BYTEWAX_POD_NAME:-}" ]; then
        id=$(process_id)
        read_hosts
        count=${#HOSTS[@]}
        [ "$id" -lt "$count" ] ||
            die "process $id has no address: $BYTEWAX_HOSTFILE_PATH lists $count process(es)"
        # bytewax.run's -a takes the addresses joined by ';'
        args+=(-i "$id" -a "$(IFS=';' && printf '%s' "${HOSTS[*]}")")
    fi
    if [ -n "${BYTEWAX_RECOVERY_DIRECTORY:-}" ]; then
        ensure_recovery_store "$id"
        args+=(-r "$BYTEWAX_RECOVERY_DIRECTORY"
            -s "${BYTEWAX_SNAPSHOT_INTERVAL:-30}" -b "${BYTEWAX_RECOVERY_BACKUP_INTERVAL:-0}")
    fi
    cd "${BYTEWAX_WORKDIR:-.}"
    log "process $id of $count: python ${args[*]}"
    exec python "${args[@]}"
}

case "${1:-run}" in
run) run ;;
hostfile) write_hostfile ;;
*) exec "$@" ;;
esac
