"""nmpi-failover: keeps the public entry point on the site that holds the database leader."""

__version__ = "0.1.0"
