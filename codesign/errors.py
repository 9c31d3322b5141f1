"""Errors a user can act on. The shell turns these into one message and exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a design file, a flag, a plug-in, a run folder.

    The message names where (file, key path), what was given and what was expected.
    """


class DesignError(UserError):
    """A design file that does not describe a valid design space."""


class PluginError(UserError):
    """A cost-model plug-in that cannot be loaded or does not satisfy the protocol."""
