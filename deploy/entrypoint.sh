#!/usr/bin/env bash
# Container entrypoint of the Writech image: one Bytewax process of the
# dataflow, following the conventions of the Bytewax Helm chart's pods.
# The image holds it as /app/entrypoint.sh, and as /app/entrypoint-recovery.sh
# for the chart's recovery init container (which runs `sh ./NAME`: the
# first command below hands the script to bash).
#
#   entrypoint.sh run        run dataflow.py (the default command)
#   entrypoint.sh hostfile   write the cluster's hostfile (init container)
#   entrypoint.sh recovery   create the recovery store unless it exists
#                            (the default as entrypoint-recovery.sh)
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
#   BYTEWAX_RECOVERY_PARTS       partitions of a new store; when set, an
#                                existing store must have as many
#   BYTEWAX_SNAPSHOT_INTERVAL, BYTEWAX_RECOVERY_BACKUP_INTERVAL  seconds
#   BYTEWAX_RECOVERY_WAIT        seconds a process waits for the store
#                                (default 300)
# Without BYTEWAX_POD_NAME it runs a single process. The recovery store is
# one directory shared by every process (one volume mounted in every pod):
# process 0 creates it, once, with all its partitions, and the others wait
# for it; `recovery` creates it from whichever pod comes first. Partitions
# are created aside and moved in without replacing any: a store in use is
# never touched.
#
# `hostfile` writes BYTEWAX_HOSTFILE_PATH with BYTEWAX_REPLICAS lines
# STATEFULSET-i.SERVICE.NAMESPACE.svc.CLUSTER_DOMAIN:PORT, from
# BYTEWAX_STATEFULSET_NAME, BYTEWAX_SERVICE_NAME (default: the StatefulSet's
# name), BYTEWAX_NAMESPACE, BYTEWAX_CLUSTER_DOMAIN (default cluster.local)
# and BYTEWAX_PROCESS_PORT (default 9999).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
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

# Make sure the recovery store exists: create it (`create`), or wait for
# process 0 to (`wait`).
ensure_recovery_store() {
    local mode=$1 dir=$BYTEWAX_RECOVERY_DIRECTORY wanted=${BYTEWAX_RECOVERY_PARTS:-}
    if [ -n "$wanted" ]; then positive BYTEWAX_RECOVERY_PARTS "$wanted"; fi
    mkdir -p "$dir"
    local found
    found=$(partitions_in "$dir")
    if [ "$found" = 0 ] && [ "$mode" = create ]; then
        local staging="$dir/.creating-${HOSTNAME:-$$}" part
        rm -rf "$staging"
        writech recovery init --dir "$staging" --partitions "${wanted:-1}"
        for part in "$staging"/part-*.sqlite3; do
            [ -e "$dir/${part##*/}" ] || mv -n "$part" "$dir/"
        done
        rm -rf "$staging"
        found=$(partitions_in "$dir")
    fi
    local waited=0 patience=${BYTEWAX_RECOVERY_WAIT:-300}
    while [ "$found" = 0 ]; do
        [ "$waited" -lt "$patience" ] ||
            die "no recovery store in $dir after ${patience}s (process 0 creates it)"
        ((waited % 10 == 0)) && log "waiting for process 0 to create the recovery store in $dir"
        sleep 1
        waited=$((waited + 1))
        found=$(partitions_in "$dir")
    done
    if [ -n "$wanted" ] && [ "$found" != "$wanted" ]; then
        sleep 1 # process 0 may be moving the last partitions in right now
        found=$(partitions_in "$dir")
        [ "$found" = "$wanted" ] ||
            die "$dir holds $found recovery partitions but BYTEWAX_RECOVERY_PARTS is $wanted;" \
                "the count is fixed when the store is created (docs/operations.md, Scaling)"
    fi
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
        local role=wait
        if [ "$id" = 0 ]; then role=create; fi
        ensure_recovery_store "$role"
        args+=(-r "$BYTEWAX_RECOVERY_DIRECTORY"
            -s "${BYTEWAX_SNAPSHOT_INTERVAL:-30}" -b "${BYTEWAX_RECOVERY_BACKUP_INTERVAL:-0}")
    fi
    cd "${BYTEWAX_WORKDIR:-.}"
    log "process $id of $count: python ${args[*]}"
    exec python "${args[@]}"
}

default=run
if [ "${0##*/}" = entrypoint-recovery.sh ]; then default=recovery; fi
case "${1:-$default}" in
run) run ;;
hostfile) write_hostfile ;;
recovery)
    need BYTEWAX_RECOVERY_DIRECTORY
    ensure_recovery_store create
    ;;
*) exec "$@" ;;
esac
