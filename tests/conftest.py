"""Hypothesis profiles: ``ci`` (default: few examples, derandomized, no deadline) for
``make test``, and ``long`` for a long search: ``pytest tests/test_properties.py
--hypothesis-profile=long`` (or ``HYPOTHESIS_PROFILE=long``)."""

import os

from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=10, deadline=None, derandomize=True,
                          suppress_health_check=_SLOW_OK, print_blob=True)
settings.register_profile("long", max_examples=1500, deadline=None, suppress_health_check=_SLOW_OK,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
