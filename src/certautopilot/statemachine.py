"""The one mechanism behind every status column: a pure table of allowed moves.

Each domain declares its states as a ``StrEnum`` and its allowed moves as a table, and
exposes ONE ``transition`` function built on :class:`Machine`. Columns stay ``String``:
a ``StrEnum`` member compares equal to (and is stored as) its value. Staying in the same
state is always allowed: durable workflow steps are re-run after a crash and write the
state they wrote before.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from certautopilot.errors import IllegalTransition

S = TypeVar("S", bound=StrEnum)


class Machine(Generic[S]):
    def __init__(self, name: str, states: type[S], moves: Mapping[S, frozenset[S]]) -> None:
        missing = set(states) - set(moves)
        if missing:  # every state is listed, terminal ones with an empty set
            raise ValueError(f"{name}: no row for {sorted(missing)}")
        self.name = name
        self.states = states
        self.moves = moves

    def allowed(self, current: S, new: S) -> bool:
        return new == current or new in self.moves[current]

    def move(self, current: str, new: S) -> S:
        """``new`` when the table allows ``current`` → ``new``; :class:`IllegalTransition`
        otherwise (also for a ``current`` value that is not a state of this machine)."""
        try:
            state = self.states(current)
        except ValueError:
            raise IllegalTransition(self.name, str(current), str(new)) from None
        if not self.allowed(state, new):
            raise IllegalTransition(self.name, str(state), str(new))
        return new
