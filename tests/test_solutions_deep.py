"""The exercise solutions of chapters 5-8 and 10, executed in quick mode against their targets.

The same check as tests/test_solutions.py (its ``TARGETS``, ``PRINTED`` and ``SETUP``), in a file of its own:
make test-slow spreads test files over its workers, and these chapters take as long as the others together.
"""

from __future__ import annotations

import pytest

from tests.test_solutions import DEEP, run_with_solutions


@pytest.mark.slow
@pytest.mark.parametrize("chapter", DEEP)
def test_solutions_of_the_deep_chapters_meet_their_quick_targets(chapter, tmp_path):
    run_with_solutions(chapter, tmp_path)
