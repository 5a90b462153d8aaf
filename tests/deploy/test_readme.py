"""The README stays a newcomer's first five minutes."""

from __future__ import annotations

from tests.conftest import REPO

README = REPO / "README.md"


def test_the_readme_is_at_most_15_000_bytes():
    assert len(README.read_bytes()) <= 15_000
