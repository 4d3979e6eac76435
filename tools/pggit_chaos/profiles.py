"""The Hypothesis profiles of the suite, and the share of a profile's examples a costly property takes.

Pick a profile with ``--hypothesis-profile`` or ``HYPOTHESIS_PROFILE``:
``dev`` (the default), ``smoke`` (``make smoke``'s), ``ci``, ``gate`` (the
merge gate: ``dev``'s size with a seed fixed per test, so no seed nobody
chose blocks a merge) and ``thorough`` (the weekly hunt); ``mutation`` is the
mutation runners' own. Every profile prints, with each failure, the
``@reproduce_failure`` decorator that replays exactly the minimal example
("the blob"). All but ``gate`` keep failing examples in ``EXAMPLES_DIR`` (the
checkout's ``.hypothesis/examples/``, whatever directory pytest runs from)
and try them first on the next run; a CI job keeps them by caching that
directory. ``gate``'s ``derandomize=True`` means no example database: the
same examples run every time anyway.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from pggit_chaos.paths import REPO

EXAMPLES_DIR = REPO / ".hypothesis" / "examples"
_EXAMPLES = DirectoryBasedExampleDatabase(EXAMPLES_DIR)
# Deadlines off: a first example that pays for a cold cache or a lock wait is not a failure.
_COMMON = dict(suppress_health_check=[HealthCheck.too_slow], deadline=None, print_blob=True)
# The everyday loop (make test, and the merge gate) tries few examples of each property; the main branch's ci
# profile and the weekly hunt's thorough one try many more, with fresh seeds.
settings.register_profile("dev", max_examples=10, database=_EXAMPLES, **_COMMON)
settings.register_profile("smoke", max_examples=3, database=_EXAMPLES, **_COMMON)
settings.register_profile("ci", max_examples=50, derandomize=False, database=_EXAMPLES, **_COMMON)
settings.register_profile("gate", max_examples=10, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=500, verbosity=Verbosity.normal, database=_EXAMPLES, **_COMMON)
# A mutant's verdict needs one failing example, not the smallest nor every distinct one: no shrinking (a failing
# state machine shrinks for minutes), the first failure ends the test, and no example database to replay.
# It must be loaded before the tests are imported (fast_loop.py does so): a test's own @settings copies the
# profile loaded when its module is imported, so loading it later changes only the undecorated tests.
settings.register_profile("mutation", max_examples=25, database=None, report_multiple_bugs=False,
                          phases=[Phase.explicit, Phase.generate], **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def share_of_examples(divisor: int, minimum: int) -> settings:
    """Settings for a property whose every example costs seconds (a dump, a race, a server restart).

    It tries the profile's example count divided by ``divisor``, but at least
    ``minimum``: a few in the everyday loop, and still hundreds under
    ``thorough``. Apply it as ``@share_of_examples(5, 4)`` under ``@given``.
    """
    if divisor < 1 or minimum < 1:
        raise ValueError(f"share_of_examples needs a divisor and a minimum of at least 1, not {divisor} and {minimum}")
    return settings(max_examples=max(minimum, settings.default.max_examples // divisor))
