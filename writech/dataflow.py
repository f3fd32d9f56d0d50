"""The Writech dataflow, for `python -m bytewax.run writech.dataflow`.

Shipped inside the package, so that an installed copy (the image, a wheel)
has a flow for Bytewax to run. Configured by `WRITECH_*` environment
variables (README, Configuration); with none, it replays the bundled sample
data into ./data. The repository's top-level `dataflow.py` imports it, for
`python -m bytewax.run dataflow` and for the Bytewax Helm chart's ConfigMap.
"""

from writech.failures import install_signal_handlers
from writech.flow import build_flow, tune_gc
from writech.logs import configure_logging
from writech.settings import Settings

configure_logging()
install_signal_handlers()
flow = build_flow(Settings.from_env())
tune_gc()
