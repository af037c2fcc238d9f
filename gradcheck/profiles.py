"""gradcheck's hypothesis settings profiles, registered under gradcheck-* names.

Registering is not loading: nothing here changes the active profile. Load one with
``settings.load_profile("gradcheck-ci")`` or pytest's ``--hypothesis-profile``, or with
``--gradcheck-profile`` through gradcheck's pytest plugin.
"""

from __future__ import annotations

from typing import Any

#: profile name -> settings keyword arguments
PROFILES: dict[str, dict[str, Any]] = {
    # Fast and repeatable: few examples, a fixed seed derived from the test, no deadline
    # (a check's time depends on the machine, not on the code under test).
    "gradcheck-ci": {"max_examples": 25, "derandomize": True, "deadline": None},
    # A long hunt: many examples, random seeds, the example database replaying failures.
    "gradcheck-thorough": {"max_examples": 2000, "deadline": None},
}


def register() -> None:
    """Register the gradcheck-* profiles with hypothesis (idempotent)."""
    # lazy: the pytest plugin imports this module, and hypothesis loads only when a check
    # needs a profile.
    from hypothesis import HealthCheck, settings

    for name, options in PROFILES.items():
        settings.register_profile(name, suppress_health_check=[HealthCheck.too_slow], **options)
