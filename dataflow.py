"""`python -m bytewax.run dataflow` from the repository; the Helm chart's ConfigMap holds this file."""

from writech.dataflow import flow as flow
