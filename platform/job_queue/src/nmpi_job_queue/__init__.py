"""Job-queue REST API of the EBRAINS Neuromorphic Computing Platform."""

__version__ = "0.1.0"
