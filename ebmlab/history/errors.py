"""Errors of the history floor: a run store that cannot be written, or one found damaged when read."""

from __future__ import annotations


class StoreWriteError(OSError):
    """A run-history store could not be written (deleted, unwritable or full folder); names the store."""


class DamagedStoreError(ValueError):
    """A run-history store is damaged (a missing, garbage or truncated chunk, a removed variable, an edited
    counter); the message names the store and the variable."""
