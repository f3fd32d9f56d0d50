"""The Writech dataflow, for `python -m bytewax.run writech.dataflow`.

Shipped inside the package, so that an installed copy (the image, a wheel)
has a flow for Bytewax to run. Configured by `WRITECH_*` environment
variables (README, Configuration); with none, it replays the bundled sample
data into ./data. The repository's top-level `dataflow.py` imports it, for
`python -m bytewax.run dataflow` and for the Bytewax Helm chart's ConfigMap.
"""

import os
import sys
from pathlib import Path

from writech.failures import Interrupted, exit_status, install_signal_handlers
from writech.flow import build_flow, tune_gc
from writech.logs import SETUP_ERRORS, configure_logging, log_setup_error
from writech.settings import Settings
from writech.sources.resume import check_recovery_store

# `python -m bytewax.run` has parsed its arguments when it imports this module:
# several processes need an id (-i, BYTEWAX_PROCESS_ID, or the Helm chart's
# pod name) and addresses. Only the cost of routing depends on this.
_MULTI_PROCESS_ARGUMENTS = {"-i", "--process-id", "-a", "--addresses"}
_MULTI_PROCESS_VARIABLES = {"BYTEWAX_PROCESS_ID", "BYTEWAX_ADDRESSES", "BYTEWAX_POD_NAME"}
single_process = not (
    _MULTI_PROCESS_ARGUMENTS.intersection(arg.partition("=")[0] for arg in sys.argv)
    or _MULTI_PROCESS_VARIABLES.intersection(os.environ)
)

# Its `__main__` block holds the arguments it parsed: the recovery store (-r, or
# the variable) among them.
_main = sys.modules.get("__main__")
_run_by_bytewax = getattr(getattr(_main, "__spec__", None), "name", None) == "bytewax.run"
_recovery_config = getattr(_main, "kwargs", {}).get("recovery_config") if _run_by_bytewax else None
# Without a recovery store snapshots are not pickled. Imported otherwise, any
# argument that might name one counts, since skipping the snapshots of a run
# that keeps them would lose its state.
recovery = (
    _recovery_config is not None
    if _run_by_bytewax
    else "BYTEWAX_RECOVERY_DIRECTORY" in os.environ
    or any(arg.startswith(("-r", "--r")) for arg in sys.argv[1:])
)

configure_logging()
install_signal_handlers()
try:
    if _recovery_config is not None:
        # Bytewax would stop on a missing, empty or read-only one in a panic
        check_recovery_store(Path(_recovery_config.db_dir), "-r (BYTEWAX_RECOVERY_DIRECTORY)")
    flow = build_flow(Settings.from_env(), single_process=single_process, recovery=recovery)
except SETUP_ERRORS as exc:
    # One log line naming the setting, input or store to fix, as `writech replay` says
    # it, not a backtrace: under Kubernetes that line is what the pod's log shows.
    log_setup_error(exc)
    raise SystemExit(2) from None
except Interrupted as stop:  # while waiting for the Kafka brokers: nothing was read
    raise SystemExit(exit_status(stop.signal_name)) from None  # the reason is said at exit
tune_gc()
