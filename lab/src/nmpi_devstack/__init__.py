"""The local multi-region OpenStack (lab/): `nmpi-devstack up|status|down|clean`."""
