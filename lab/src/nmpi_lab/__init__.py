"""The platform on the local lab: what `make lab` deployed there and the commands around it.

- `deployment`: the deployed platform as the inventory and the clouds describe it (hosts,
  addresses, the CA, the demo user), read by the commands below and by the test suites;
- `python -m nmpi_lab.info`: how to reach it (the end of `make lab`, `make lab-info`);
- `python -m nmpi_lab.hostdns on|off|status`: this machine's resolver asks the lab's DNS first;
- `python -m nmpi_lab.bench_deploy` (make bench-deploy), `python -m nmpi_lab.bench_lab`
  (make bench-lab), `python -m nmpi_lab.chaos.bench_failover` (make bench-failover): figures;
- `chaos`: faults with users at work (the scenarios of `make chaos` and `make bench-failover`);
- `processes`: start a server process, wait until it answers, stop it (the one harness of the
  lab's services and of the test suites' loopback servers).

The local OpenStack itself is the sibling package nmpi_devstack (`nmpi-devstack up|down|...`).
"""
