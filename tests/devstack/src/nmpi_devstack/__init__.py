"""The local two-region OpenStack (tests/devstack): `nmpi-devstack up|status|down|clean`."""
