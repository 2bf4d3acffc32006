"""The Hypothesis profiles of tests/conftest.py: reproducible by default, random on request."""

from __future__ import annotations

import os

from hypothesis import settings


def test_ci_replays_the_same_examples_and_random_explores_more() -> None:
    """``ci`` is derandomized; ``random`` is not and tries more examples per test."""
    ci, random = settings.get_profile("ci"), settings.get_profile("random")
    assert ci.derandomize is True
    assert random.derandomize is False
    assert random.max_examples > ci.max_examples


def test_the_active_profile_is_the_one_asked_for() -> None:
    """``KOSSIM_HYPOTHESIS`` picks the profile every property test runs under (``ci`` unset)."""
    wanted = settings.get_profile(os.environ.get("KOSSIM_HYPOTHESIS", "ci"))
    assert settings.default.derandomize == wanted.derandomize
    assert settings.default.max_examples == wanted.max_examples
