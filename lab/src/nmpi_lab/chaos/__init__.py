"""Faults on the deployed lab with users at work: the scenarios (scenarios.py), the users' load
(load.py, resolver.py), the observers (observe.py, dbprobe.py) and the failover benchmark
(`python -m nmpi_lab.chaos.bench_failover`). The chaos test suite (tests/chaos) runs every
scenario; the fault primitives themselves are nmpi_devstack.chaos."""
