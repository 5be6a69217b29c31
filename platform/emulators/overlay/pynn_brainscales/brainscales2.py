"""``pynn_brainscales.brainscales2``: the emulator's BrainScaleS-2 front-end, under this name.

The module replaces itself in ``sys.modules`` with the front-end, so both names are one module.
"""

import sys

from nmpi_emulator.frontends import brainscales2 as _frontend

sys.modules[__name__] = _frontend
