"""Lab drivers loaded by the local OpenStack services (Nova, Cinder, Neutron)."""
