"""Leaving a ``with`` block whose object failed while stopping."""

from __future__ import annotations


def note_stop_failure(exc: BaseException, what: str, stop_error: BaseException) -> None:
    """Record on the block's own exception that ``what`` also failed while stopping.

    The block's exception stays the one raised, so a stop error never hides it
    (getsentry/responses#129); Python 3.10 has no notes and keeps only the block's error.
    """
    add_note = getattr(exc, "add_note", None)  # Python 3.11+
    if add_note is not None:
        add_note(f"{what} also failed while stopping: {stop_error}")
