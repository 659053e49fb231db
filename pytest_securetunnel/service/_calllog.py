"""The fake's call log: a list that keeps only the latest entries."""

from __future__ import annotations

from typing import SupportsIndex, TypeVar

_T = TypeVar("_T")

#: How many calls a fake keeps by default (the oldest are dropped beyond it).
DEFAULT_MAX_CALLS = 10_000


class CallLog(list[_T]):
    """A list of the latest ``max_size`` entries; :attr:`dropped` counts the older ones.

    It compares, indexes and iterates as the list of the entries it keeps.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_CALLS) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_calls must be a positive integer; got {max_size!r}")
        super().__init__()
        #: How many entries are kept.
        self.max_size = max_size
        #: How many older entries were dropped to keep at most :attr:`max_size`.
        self.dropped = 0

    def append(self, item: _T) -> None:
        """Add ``item``; drop the oldest entry if the log is full."""
        super().append(item)
        excess = len(self) - self.max_size
        if excess > 0:
            del self[:excess]
            self.dropped += excess

    def clear(self) -> None:
        """Forget every entry and the count of dropped ones."""
        super().clear()
        self.dropped = 0

    def total(self) -> int:
        """Entries ever logged since the last :meth:`clear`: kept plus dropped."""
        return len(self) + self.dropped

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        super().__delitem__(index)
