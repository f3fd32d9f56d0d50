#!/usr/bin/env bash
# Container entrypoint of the Writech image: one Bytewax process of the flow.
# The image holds it as /app/entrypoint.sh, and as /app/entrypoint-recovery.sh
# for the Bytewax Helm chart's recovery init container.
#
#   entrypoint.sh run        make sure the recovery store and the tables
#                            exist, then run the flow (the default command)
#   entrypoint.sh recovery   make sure the recovery store exists (the
#                            default when started as entrypoint-recovery.sh)
#   entrypoint.sh hostfile   write the cluster's hostfile (k8s/base's init
#                            container; the chart writes its own)
#   entrypoint.sh CMD ARG... run any other command, e.g. `writech init-db`
#
# `run` execs `python -m bytewax.run "$BYTEWAX_PYTHON_FILE_PATH"`, which reads
# the cluster's variables itself (Bytewax 0.21.1, bytewax/run.py):
#   BYTEWAX_WORKERS_PER_PROCESS  worker threads in this process
#   BYTEWAX_PROCESS_ID, BYTEWAX_ADDRESSES
#                                this process's id and every process's host:port
#   BYTEWAX_POD_NAME, BYTEWAX_STATEFULSET_NAME
#                                else the id is the pod name less "<name>-":
#                                pod writech-2 of StatefulSet writech, or the
#                                chart's job mode's completion index 2, is 2
#   BYTEWAX_HOSTFILE_PATH        else the addresses, one line per process
#   BYTEWAX_RECOVERY_DIRECTORY, BYTEWAX_SNAPSHOT_INTERVAL,
#   BYTEWAX_RECOVERY_BACKUP_INTERVAL
#                                recovery (unset: none); both intervals are
#                                required with a directory
# and this script reads what it lacks:
#   BYTEWAX_PYTHON_FILE_PATH     the flow (default writech.dataflow, the
#                                packaged one; the chart names the file it ships)
#   BYTEWAX_WORKDIR              directory to run in (default: the current one)
#   BYTEWAX_RECOVERY_PARTS       partitions of a new recovery store (default 1);
#                                when set, an existing store must hold as many
#   BYTEWAX_RECOVERY_WAIT        seconds to wait while another process creates
#                                the store (default 300)
# `hostfile` writes BYTEWAX_HOSTFILE_PATH with BYTEWAX_REPLICAS lines
# STATEFULSET-i.SERVICE.NAMESPACE.svc.CLUSTER_DOMAIN:PORT, from
# BYTEWAX_STATEFULSET_NAME, BYTEWAX_SERVICE_NAME (default: the StatefulSet's
# name), BYTEWAX_NAMESPACE, BYTEWAX_CLUSTER_DOMAIN (default cluster.local)
# and BYTEWAX_PROCESS_PORT (default 9999).
#
# The recovery store is one directory shared by every process (one volume in
# every pod). All processes start at once; whichever takes the lock first
# creates every partition (aside, then moved in), the others find them. A
# store that holds partitions is never changed.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

# The chart starts containers with `sh -c "sh ./entrypoint.sh"`, past the
# image's ENTRYPOINT. The image's sh is bash, which leaves PID 1 to this
# script; PID 1 gets no default signal handling (SIGTERM would be ignored),
# so tini takes it: it forwards signals to the flow and reaps children.
if [ "$$" = 1 ] && command -v tini >/dev/null; then exec tini -- bash "$0" "$@"; fi

log() { printf 'entrypoint: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 2
}
need() { [ -n "${!1:-}" ] || die "$1 is not set"; }
positive() {
    if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ]; then
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

partitions_in() {
    local parts=("$1"/part-*.sqlite3)
    [ -e "${parts[0]}" ] && printf '%d' "${#parts[@]}" || printf '0'
}

ensure_recovery_store() {
    need BYTEWAX_RECOVERY_DIRECTORY
    local dir=$BYTEWAX_RECOVERY_DIRECTORY wanted=${BYTEWAX_RECOVERY_PARTS:-}
    local patience=${BYTEWAX_RECOVERY_WAIT:-300} lock found
    if [ -n "$wanted" ]; then positive BYTEWAX_RECOVERY_PARTS "$wanted"; fi
    positive BYTEWAX_RECOVERY_WAIT "$patience"
    mkdir -p "$dir"
    exec {lock}>>"$dir/.entrypoint.lock"
    flock --wait "$patience" "$lock" ||
        die "another process kept $dir/.entrypoint.lock for ${patience}s"
    found=$(partitions_in "$dir")
    if [ "$found" = 0 ]; then
        local staging="$dir/.creating"
        rm -rf "$staging"
        writech recovery init --dir "$staging" --partitions "${wanted:-1}"
        mv "$staging"/part-*.sqlite3 "$dir/"
        rmdir "$staging"
        found=$(partitions_in "$dir")
    fi
    exec {lock}>&-
    if [ -n "$wanted" ] && [ "$found" != "$wanted" ]; then
        die "$dir holds $found recovery partitions but BYTEWAX_RECOVERY_PARTS is $wanted;" \
            "the count is fixed when the store is created (docs/operations.md, Scale)"
    fi
}

run() {
    if [ -n "${BYTEWAX_RECOVERY_DIRECTORY:-}" ]; then ensure_recovery_store; fi
    # The chart has no step of its own for this: every start checks (idempotent).
    writech init-db
    cd "${BYTEWAX_WORKDIR:-.}"
    local flow=${BYTEWAX_PYTHON_FILE_PATH:-writech.dataflow}
    log "python -m bytewax.run $flow"
    exec python -m bytewax.run "$flow"
}

default=run
if [ "${0##*/}" = entrypoint-recovery.sh ]; then default=recovery; fi
case "${1:-$default}" in
run) run ;;
recovery) ensure_recovery_store ;;
hostfile) write_hostfile ;;
*) exec "$@" ;;
esac
