"""The local multi-region OpenStack (tests/devstack): `nmpi-devstack up|status|down|clean`."""
