"""`writech.frozen`: the cooling rule that the daily rows and the windows share."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import cooling_clock
from writech import frozen


class _Part(frozen.Cooling):
    __slots__ = ("value",)

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def state(self) -> Any:
        return self.value

    def restore(self, state: Any) -> None:
        self.value = state
        self.rest()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    return cooling_clock(monkeypatch, frozen, patience=2.0, most=8.0)


def test_a_part_is_idle_once_unchanged_for_longer_than_its_patience(clock: list[float]) -> None:
    part = _Part()
    assert (part.changed, part.patience) == (1000.0, 2.0)
    assert not part.idle(1002.0)
    assert part.idle(1002.5)
    part.changed = 1002.5  # a flush found it changed
    assert not part.idle(1004.0)


def test_a_part_left_behind_is_idle_at_once_until_an_event_brings_it_back(
    clock: list[float],
) -> None:
    part = _Part()
    assert not part.idle(1000.5)
    assert part.idle(1000.5, passed=True)
    part.brought_back(part.patience)  # late events come for it: its patience rules
    assert not part.idle(1000.5, passed=True)
    assert part.idle(1004.5, passed=True)


def test_each_return_doubles_the_patience_up_to_the_most(clock: list[float]) -> None:
    part = _Part()
    patiences = []
    for _ in range(4):
        part.brought_back(part.patience)
        patiences.append(part.patience)
    assert patiences == [4.0, 8.0, 8.0, 8.0]


def test_a_resumed_part_starts_with_the_first_patience_from_its_resume(clock: list[float]) -> None:
    part = _Part()
    part.value = 7
    part.brought_back(part.patience)
    clock[0] = 1500.0
    resumed = _Part.unfrozen(part.freeze())
    assert (resumed.value, resumed.changed, resumed.patience) == (7, 1500.0, 2.0)
