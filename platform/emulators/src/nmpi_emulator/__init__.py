"""Emulated SpiNNaker and BrainScaleS-2 hardware sites for the job queue (see README.md)."""

__version__ = "0.1.0"
