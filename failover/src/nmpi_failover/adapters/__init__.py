"""Network adapters implementing `nmpi_failover.ports`, one module per system they talk to.

Reads report what they could not see (a failed probe, None) instead of raising; actions
raise `ports.ActuatorError`. `build.py` wires the real ones from a `Config`.
"""
