"""The Writech dataflow, for `python -m bytewax.run dataflow`.

Configured by `WRITECH_*` environment variables (see README); with none,
it replays the bundled sample data into ./data.
"""

from writech.flow import build_flow
from writech.logs import configure_logging
from writech.settings import Settings

configure_logging()
flow = build_flow(Settings.from_env())
