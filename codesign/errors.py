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


class ArgumentError(UserError):
    """A bad argument of a call, reported in the caller's words.

    The API names it as the argument (``trials=0``), the shell as the flag (``--trials 0``):
    :meth:`words` renders either; ``str()`` is the API's. ``expected`` may refer to the
    argument itself as ``{arg}`` (``"use {arg} cpu or auto"``) and to other arguments by the
    placeholders given in ``related`` (``related={"budget": "oracle_budget"}`` and ``{budget}``).
    """

    def __init__(self, argument: str, value, expected: str, *, related: dict[str, str] | None = None) -> None:
        self.argument, self.value, self.expected = argument, value, expected
        self.related = dict(related or {})
        super().__init__(self.words("api"))

    @staticmethod
    def name(argument: str, style: str) -> str:
        """How a caller of ``style`` (``api`` or ``cli``) spells ``argument``."""
        return "--" + argument.replace("_", "-") if style == "cli" else argument

    def words(self, style: str) -> str:
        names = {key: self.name(argument, style) for key, argument in self.related.items()}
        if style == "cli":
            name = self.name(self.argument, style)
            shown = name if self.value is None else f"{name} {self.value}"  # as typed on the command line
        else:
            name = self.argument
            shown = f"{name}={self.value!r}"  # as written in the call
        return f"{shown}: {self.expected.format(arg=name, **names)}"
