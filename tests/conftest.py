"""Shared settings for the project's own tests.

The hypothesis profile comes from GRADCHECK_TEST_PROFILE: "ci" (the default: few,
derandomized examples so that the suite is fast and repeatable) or "thorough".
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("GRADCHECK_TEST_PROFILE", "ci"))
