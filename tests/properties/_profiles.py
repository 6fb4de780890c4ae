"""Hypothesis profiles for the property suite, chosen by `BIRNN_HYPOTHESIS_PROFILE`.

- `ci` (the default, what `make test` runs): a fixed, derandomized set of
  examples, small enough to stay well under a minute.
- `fuzz` (`make fuzz`): random examples for a long local soak;
  `BIRNN_FUZZ_EXAMPLES` sets how many per test (default 1000).
"""

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=30,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("BIRNN_FUZZ_EXAMPLES", "1000")),
    deadline=None,
    print_blob=True,
    suppress_health_check=_QUIET,
)

PROFILE = settings.get_profile(os.environ.get("BIRNN_HYPOTHESIS_PROFILE", "ci"))
