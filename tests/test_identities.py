"""The identities of counted events (SPEC §2): exact against a plain set, and small."""

from __future__ import annotations

import pickle
import sys
from array import array
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from tests import reference
from tests.cases import message
from tests.test_aggregate import decode, final_table, run, streams
from writech import identities
from writech.aggregate import Shard, ShardOutput
from writech.identities import Identities

# a few keys that repeat, the ends of the 64-bit range, and any key
keys = st.one_of(
    st.integers(0, 30),
    st.integers(2**64 - 30, 2**64 - 1),
    st.integers(0, 2**64 - 1),
)
# each step: a batch of keys to count on a new day, or the oldest day to drop
steps = st.lists(st.one_of(st.lists(keys, max_size=25), st.none()), max_size=30)


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(1, 8))
def test_counts_each_key_once_like_a_set(batches: list[list[int] | None], merge_at: int) -> None:
    """Lookups, merges, drops and a rebuild (a resume) agree with a plain set."""
    with patch.object(identities, "MERGE_AT", merge_at):
        ids = Identities()
        days: list[array[int]] = []
        model: set[int] = set()
        for batch in batches:
            if batch is None:
                if days:
                    dropped = days.pop(0)
                    ids.drop(dropped)
                    model.difference_update(dropped)
                continue
            day = array("Q")
            older = ids.among_older(batch)
            for key in batch:
                assert (key in ids.newest or key in older) == (key in model)
                if key not in ids.newest and key not in older:
                    ids.newest.add(key)
                    day.append(key)
                    model.add(key)
            days.append(day)
            ids.merge()
            assert len(ids) == len(model)
        rebuilt = Identities(days)
        everything = sorted(model | {0, 2**64 - 1, 12345})
        assert rebuilt.among_older(everything) | rebuilt.newest == model
        assert ids.among_older(everything) | ids.newest == model


@settings(max_examples=100, deadline=None)
@given(streams, st.data())
def test_a_shard_merging_after_every_batch_counts_redeliveries_once(
    raws: list[bytes], data: st.DataObject
) -> None:
    """As test_aggregate's redelivery test, with the sorted array in use from the first batch."""
    again = data.draw(st.lists(st.sampled_from(raws), max_size=len(raws)))
    mixed = decode(data.draw(st.permutations(raws + again)))
    chunks = data.draw(st.lists(st.integers(1, 5), max_size=len(mixed)))
    cut = data.draw(st.integers(0, len(chunks)))
    with patch.object(identities, "MERGE_AT", 1):
        shard, outputs, start = Shard(), list[ShardOutput](), 0
        for number, size in enumerate(chunks):
            if number == cut:  # a snapshot and a resume on the way
                shard = pickle.loads(pickle.dumps(shard))
            outputs.append(shard.apply(mixed[start : start + size]))
            start += size
        outputs.append(shard.apply(mixed[start:]))
    distinct = reference.expected(raws).processed
    assert sum(out.processed for out in outputs) == distinct
    assert sum(out.duplicates for out in outputs) == len(mixed) - distinct
    assert final_table(outputs, shard.flush()) == run(decode(raws))[0]


def test_identities_of_an_evicted_day_leave_the_sorted_array() -> None:
    with patch.object(identities, "MERGE_AT", 1):
        shard = Shard(retention_days=3)
        old = [
            message("login_event", {}, event_id=f"e{n}", timestamp="2026-09-01T10:00:00+08:00")
            for n in range(50)
        ]
        shard.apply(decode(old))
        assert len(shard.identities.newest) == 0  # merged: looked up in the array
        assert shard.apply(decode(old[:10])).duplicates == 10
        new_day = message("login_event", {}, event_id="x", timestamp="2026-09-09T10:00:00+08:00")
        shard.apply(decode([new_day]))  # day 1 is evicted with its identities
        assert shard.retained_event_ids == 1
        assert shard.apply(decode([new_day])).duplicates == 1
        again = [
            message("login_event", {}, event_id=f"e{n}", timestamp="2026-09-09T11:00:00+08:00")
            for n in range(50)
        ]
        assert shard.apply(decode(again)).processed == 50  # new events now


def test_a_retained_identity_costs_about_sixteen_bytes() -> None:
    """8 bytes in its day's array and 8 in the sorted one, where a set of ints took ~78."""
    shard = Shard()
    events = decode(
        [
            message("login_event", {}, student_id=f"s{n % 500}", event_id=f"e{n}")
            for n in range(30_000)
        ]
    )
    for start in range(0, len(events), 1000):
        shard.apply(events[start : start + 1000])
    ids = shard.retained_event_ids
    assert ids == 30_000
    in_days = sum(sys.getsizeof(day.ids) for day in shard.days.values())
    assert (sys.getsizeof(shard.identities) + in_days) / ids < 20
