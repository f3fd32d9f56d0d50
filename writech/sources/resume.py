"""The states a resume from a Bytewax recovery store hands to a step, read before the run.

`writech replay` reads them to refuse, in plain words, a resume whose
input files changed or went missing: Bytewax itself would stop on a missing
one with "Key ... is not in this worker's routing map", and would resume a
changed one at its old offset. The store is read as Bytewax 0.21 reads it
to resume (its `src/recovery.rs`): the resume epoch is the lowest of the
last execution's worker frontiers, and each key's state is its newest
snapshot from before that epoch (a key whose newest one is a deletion has
none).
"""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path
from typing import Any

from writech.settings import SettingsError
from writech.stores.base import check_writable


def check_recovery_store(directory: Path, setting: str) -> None:
    """Refuse (`SettingsError`, one line) a recovery directory a run cannot resume from and
    snapshot into.

    Bytewax itself stops on these with a panic or a traceback: a directory
    that does not exist or holds no store ("No recovery partitions found on
    any worker"), or one it cannot write ("unable to open database file").
    """
    parts = sorted(directory.glob("part-*.sqlite3")) if directory.is_dir() else []
    if not parts:
        raise SettingsError(
            f"{setting}: {directory} holds no recovery store; "
            f"create it with `writech recovery init --dir {directory}`"
        )
    for path in (directory, *parts):
        check_writable(path, setting)


def resume_states(recovery: Path, step_id: str) -> dict[str, Any]:
    """The state of each key of `step_id` (`flow_id.step`) a resume from `recovery` starts with."""
    databases = [
        sqlite3.connect(f"file:{part}?mode=ro", uri=True)
        for part in sorted(recovery.glob("part-*.sqlite3"))
    ]
    try:
        executions = [row for db in databases for row in db.execute(_EXECUTIONS)]
        if not executions:
            return {}
        execution, workers, resume_epoch = max(executions)
        progress = dict.fromkeys(range(workers), resume_epoch)
        for db in databases:
            for worker, frontier in db.execute(_FRONTIERS, (execution,)):
                progress[worker] = max(progress.get(worker, frontier), frontier)
        epoch = min(progress.values())
        newest: dict[str, tuple[int, bytes | None]] = {}
        for db in databases:
            for key, snap_epoch, state in db.execute(_SNAPSHOTS, (step_id, epoch)):
                if snap_epoch >= newest.get(key, (-1, None))[0]:
                    newest[key] = (snap_epoch, state)
    finally:
        for db in databases:
            db.close()
    return {key: pickle.loads(state) for key, (_, state) in newest.items() if state is not None}


_EXECUTIONS = "SELECT ex_num, worker_count, resume_epoch FROM exs"
_FRONTIERS = "SELECT worker_index, worker_frontier FROM fronts WHERE ex_num = ?"
_SNAPSHOTS = (
    "SELECT state_key, snap_epoch, ser_change FROM snaps WHERE step_id = ? AND snap_epoch < ?"
)
