"""Stand-in for the BrainScaleS-2 software stack's ``pynn_brainscales`` (see ../README.md)."""
