"""What snapshots cost: `Frozen` state parts, and `WithoutSnapshots` for runs that keep none.

`Frozen`: a part of the state that pickles once until it changes.

Bytewax pickles a step's whole state at every epoch, recovery or not. State
kept per day (a shard's daily rows, its students' windows) changes only on
its newest days when events come in time order, so each day's part keeps
its own frozen bytes (`frozen`) until an event changes it (`thaw()`), and a
snapshot copies the older days' bytes instead of encoding them again. The
bytes are a pickle unless a part encodes its state faster (`dumps`,
`loads`); an owner may also keep an idle part as its bytes alone (`freeze`)
and bring it back when an event needs it (`unfrozen`): `Cooling` says
when a part is idle.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from datetime import datetime
from time import monotonic
from typing import Any, Self, TypeVar

from bytewax.operators import StatefulBatchLogic

# A part no flush found changed for this long is kept cold (as its bytes alone) by
# its owner. Seconds, not flushes: with short flush intervals and parts touched in
# turns (events out of order), counting flushes had them decoded and encoded again
# batch after batch. Short, so that a replay (days of events in a minute) keeps few
# parts live; a part that an event brings back waits twice as long as before going
# cold again, up to the most, so late events in turns (pens syncing) cost a few
# round trips.
COOL_AFTER_SECONDS = 1.0
COOL_AFTER_MOST_SECONDS = 64.0

F = TypeVar("F", bound="Frozen")
X = TypeVar("X")
Y = TypeVar("Y")


class Frozen:
    """Base of a state part with slots; subclasses say what their state is."""

    __slots__ = ("frozen",)

    def __init__(self) -> None:
        self.frozen: bytes | None = None

    def thaw(self) -> None:
        """The part changed: its next snapshot pickles it again."""
        self.frozen = None

    def state(self) -> Any:
        raise NotImplementedError

    def restore(self, state: Any) -> None:
        raise NotImplementedError

    def dumps(self) -> bytes:
        """The state as bytes (a pickle, unless a subclass has a faster form)."""
        return pickle.dumps(self.state(), pickle.HIGHEST_PROTOCOL)

    @classmethod
    def loads(cls, frozen: bytes) -> Any:
        """The state `dumps` made `frozen` from."""
        return pickle.loads(frozen)

    def freeze(self) -> bytes:
        """The state's bytes, encoded only if it changed since they were last made."""
        if self.frozen is None:
            self.frozen = self.dumps()
        return self.frozen

    @classmethod
    def unfrozen(cls, frozen: bytes) -> Self:
        """The part whose bytes `freeze` gave (unchanged since, so they are kept)."""
        part = cls.__new__(cls)
        part.frozen = frozen  # before `restore`, which may thaw a part it converts
        part.restore(cls.loads(frozen))
        return part

    def __reduce__(
        self,
    ) -> tuple[Callable[[type[Frozen], bytes], Frozen], tuple[type[Frozen], bytes]]:
        return _thaw, (type(self), self.freeze())


class Cooling(Frozen):
    """A `Frozen` part that its owner keeps cold (as its bytes alone) once idle.

    The rule, for every such part: cold once no flush found it changed for
    its patience; brought back by an event, it waits twice the patience it
    had before going cold again, up to `COOL_AFTER_MOST_SECONDS`. A part
    that event time has left behind goes cold at the next flush, changed or
    not, until an event first brings it back. The owner notes each flush
    that finds the part changed (`changed = now`) and asks `idle` after it.
    """

    __slots__ = ("changed", "patience")

    def __init__(self) -> None:
        super().__init__()
        self.rest()

    def rest(self) -> None:
        """The first patience, counted from now: for a new part, or one resumed from a snapshot."""
        self.changed = monotonic()  # when a flush last found it changed
        self.patience = COOL_AFTER_SECONDS  # how long unchanged before it goes cold

    def idle(self, now: float, passed: bool = False) -> bool:
        """Whether, at `now`, no flush found it changed for its patience; or, where
        event time has left the part behind (`passed`, the owner's judgement), whether
        no event has brought it back since it was made or resumed."""
        if now - self.changed > self.patience:
            return True
        # A replay or a catch-up runs through an hour of event time in well under
        # a second: waiting for the patience there kept hours of windows as objects
        # (the peak RSS of a fast replay). A part brought back has late events
        # coming for it, so its patience rules from then on.
        return passed and self.patience == COOL_AFTER_SECONDS

    def brought_back(self, patience: float) -> None:
        """An event needs it again, cold with `patience` until now: twice as patient."""
        self.patience = min(2 * patience, COOL_AFTER_MOST_SECONDS)


def _thaw(kind: type[F], frozen: bytes) -> F:
    # the name snapshots call a part back by: it must stay
    return kind.unfrozen(frozen)


class WithoutSnapshots(StatefulBatchLogic[X, Y, bytes]):
    """A step's logic in a run without a recovery store: its snapshots are empty.

    Bytewax asks every stateful step for a snapshot at each epoch, recovery
    or not; without a store nothing keeps them, so pickling the state then
    is wasted (it took up to a fifth of a replay's time).
    """

    def __init__(self, logic: StatefulBatchLogic[X, Y, bytes]) -> None:
        self._logic = logic

    def on_batch(self, values: list[X]) -> tuple[Iterable[Y], bool]:
        return self._logic.on_batch(values)

    def on_notify(self) -> tuple[Iterable[Y], bool]:
        return self._logic.on_notify()

    def on_eof(self) -> tuple[Iterable[Y], bool]:
        return self._logic.on_eof()

    def notify_at(self) -> datetime | None:
        return self._logic.notify_at()

    def snapshot(self) -> bytes:
        return b""
