"""``python -m pggit_chaos.measure.metrics``: the same as ``pggit-chaos metrics``."""

import sys

from pggit_chaos.measure.metrics.page import main

sys.exit(main())
