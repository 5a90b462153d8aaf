"""Times for tests of the time convention (`batch_cleanup.text.as_utc`)."""

from __future__ import annotations

from datetime import tzinfo


class NoOffset(tzinfo):
    """A tzinfo that knows no offset: Python counts such datetimes as naive."""

    def utcoffset(self, dt):
        return None

    def dst(self, dt):
        return None
