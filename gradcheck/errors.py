"""Exceptions raised by gradcheck.

Every error about bad usage or bad user code derives from `GradcheckError`, so a caller
can catch one type. This module imports nothing heavy: the pytest plugin imports it on
every test run of every project that installs gradcheck.
"""

from __future__ import annotations


class GradcheckError(Exception):
    """Base class of every error gradcheck raises on purpose."""


class UnknownNameError(GradcheckError, LookupError):
    """A layer type, activation or oracle was named that the catalogue does not hold."""

    def __init__(self, kind: str, name: object, choices: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.choices = choices
        shown = ", ".join(choices)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {shown}")

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return str(self.args[0])
