"""Slot choice and prefix reuse, without a model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from privserve.engine.llama.slots import SlotTable, common_prefix, default_parallel


@given(st.lists(st.integers(0, 3), max_size=30), st.lists(st.integers(0, 3), max_size=30))
def test_common_prefix_matches_a_plain_loop(a: list[int], b: list[int]) -> None:
    expected = 0
    while expected < min(len(a), len(b)) and a[expected] == b[expected]:
        expected += 1
    assert common_prefix(a, b) == expected


def test_free_slot_with_the_longest_prefix_wins_and_the_last_token_is_recomputed() -> None:
    table = SlotTable(3)
    table.slots[0].cached = [1, 2, 9]
    table.slots[1].cached = [1, 2, 3, 4, 5]
    placement = table.place([1, 2, 3, 4])
    assert placement is not None
    assert placement.slot is table.slots[1]
    assert placement.reused == 3  # not 4: the last prompt token's logits are needed
    assert placement.copy_from is None


def test_cold_prompt_takes_the_least_recently_used_slot() -> None:
    table = SlotTable(3)
    for slot, used in zip(table.slots, (5, 1, 3), strict=True):
        slot.cached, slot.last_used = [7, 7], used
    placement = table.place([1, 2, 3])
    assert placement is not None and placement.slot is table.slots[1] and placement.reused == 0


def test_prefix_held_by_a_busy_slot_is_copied_into_a_free_one() -> None:
    table = SlotTable(2)
    busy = table.slots[0]
    busy.cached, busy.prompt = [1, 2, 3, 4, 5, 6], [1, 2, 3, 4]
    placement = table.place([1, 2, 3, 9, 9])
    assert placement is not None
    assert placement.slot is table.slots[1]
    assert placement.copy_from is busy and placement.reused == 3


def test_prompt_shared_with_a_prefilling_slot_waits_for_it() -> None:
    table = SlotTable(2)
    prefilling = table.slots[0]
    prefilling.prompt, prefilling.cached = [1, 2, 3, 4, 5], [1, 2]
    assert table.place([1, 2, 3, 4, 5]) is None
    prefilling.cached = [1, 2, 3, 4, 5]  # prefill done: now it can be copied
    placement = table.place([1, 2, 3, 4, 5])
    assert placement is not None and placement.copy_from is prefilling
    assert placement.reused == 4


def test_a_short_shared_start_does_not_evict_a_long_cache() -> None:
    table = SlotTable(3)
    notes = table.slots[0]
    notes.cached = [1, 2, 3] + [8] * 100
    table.slots[1].cached, table.slots[1].last_used = [5] * 10, 0
    placement = table.place([1, 2, 3, 9, 9, 9])
    assert placement is not None
    assert placement.slot is table.slots[2]  # the empty one
    assert placement.copy_from is notes and placement.reused == 3


def test_the_same_prompt_again_continues_in_its_slot() -> None:
    table = SlotTable(2)
    slot = table.slots[0]
    slot.cached = [1, 2, 3, 4]
    placement = table.place([1, 2, 3, 4])
    assert placement is not None and placement.slot is slot and placement.copy_from is None
    assert placement.reused == 3


def test_no_free_slot_means_wait() -> None:
    table = SlotTable(1)
    table.slots[0].prompt = [1]
    assert table.place([5, 6]) is None


def test_default_parallel_follows_cores_and_context() -> None:
    assert default_parallel(4096, cores=2) == 8
    assert default_parallel(4096, cores=16) == 16
    assert default_parallel(32768, cores=16) == 2
    assert default_parallel(131072, cores=4) == 1


def test_free_slots_keep_their_prompts_up_to_the_budget_dropping_the_least_recent() -> None:
    table = SlotTable(4)
    for slot, (length, used) in zip(
        table.slots, ((100, 4), (300, 1), (200, 3), (500, 2)), strict=True
    ):
        slot.cached, slot.last_used = list(range(length)), used
    table.slots[3].prompt = [1]  # busy: never dropped, never counted
    assert table.beyond_keep(1000) == []
    # 600 kept by free slots; the least recently used go first until 250 remain at most.
    assert table.beyond_keep(250) == [table.slots[1], table.slots[2]]
    assert table.beyond_keep(0) == [table.slots[1], table.slots[2], table.slots[0]]


# -- sliding windows and holders ------------------------------------------------------------

SYSTEM = list(range(100, 140))  # a shared start longer than MIN_HELD_TOKENS


def test_a_prefix_whose_window_is_gone_is_not_reused() -> None:
    table = SlotTable(2)
    table.slots[0].cached = [*SYSTEM, 1, 2, 3]
    floors = {0: 41}  # its window layers now start past position 1
    placement = table.place([*SYSTEM, 9, 9], floor=lambda s: floors.get(s.sequence, 0))
    assert placement is not None and placement.reused == 0 and placement.copy_from is None


def test_a_shared_start_is_held_once_its_prefill_reaches_it() -> None:
    table = SlotTable(2, holders=1)
    table.slots[0].cached = [*SYSTEM, 1, 2, 3]
    placement = table.place([*SYSTEM, 9, 9], floor=lambda s: 10_000 if s.sequence == 0 else 0)
    assert placement is not None
    assert placement.reused == 0 and placement.hold_at == len(SYSTEM)


def test_a_shared_start_still_cached_is_held_at_once() -> None:
    table = SlotTable(2, holders=1)
    table.slots[0].cached = [*SYSTEM, 1, 2, 3] + [4] * 100
    placement = table.place([*SYSTEM, 9, 9])
    assert placement is not None and placement.copy_from is table.slots[0]
    assert placement.reused == placement.hold_at == len(SYSTEM)


def test_a_held_start_is_copied_from_its_holder_and_not_held_again() -> None:
    table = SlotTable(2, holders=2)
    holder = table.holders[0]
    holder.cached = list(SYSTEM)
    table.slots[0].cached = [*SYSTEM, 1, 2, 3]
    placement = table.place([*SYSTEM, 9, 9], floor=lambda s: 10_000 if s.sequence == 0 else 0)
    assert placement is not None
    assert placement.copy_from is holder and placement.reused == len(SYSTEM)
    assert placement.hold_at == 0
    assert placement.slot in table.slots  # holders never serve


def test_a_short_shared_start_is_not_held() -> None:
    table = SlotTable(2, holders=1)
    table.slots[0].cached = [1, 2, 3, 4, 5]
    placement = table.place([1, 2, 3, 9, 9])
    assert placement is not None and placement.hold_at == 0


def test_a_prompt_waiting_for_a_prefilling_slot_marks_where_that_slot_holds() -> None:
    table = SlotTable(2, holders=1)
    prefilling = table.slots[0]
    prefilling.prompt, prefilling.cached = [*SYSTEM, 1, 2, 3], SYSTEM[:5]
    assert table.place([*SYSTEM, 9, 9]) is None
    assert prefilling.hold_at == len(SYSTEM)


def test_holders_are_replaced_least_recently_used_first() -> None:
    table = SlotTable(1, holders=2)
    first, second = table.holders
    assert table.holder_to_fill() is first  # empty ones first
    first.cached, second.cached = [1], [2]
    table.touch(second)
    table.touch(first)
    assert table.holder_to_fill() is second


def test_contiguous_slots_put_a_cold_prompt_beside_a_running_one() -> None:
    """Split KV streams compute a run of consecutive slots per pass: a new prompt goes next
    to the running slot, not to the least recently used one across the table."""
    table = SlotTable(5, contiguous=True)
    for slot, used in zip(table.slots, (4, 1, 5, 3, 2), strict=True):
        slot.cached, slot.last_used = [7, 7], used
    table.slots[3].prompt = [8, 8, 8]
    placement = table.place([1, 2, 3])
    assert placement is not None
    # Slots 2 and 4 are beside the running slot 3; 4 was used less recently.
    assert placement.slot is table.slots[4]
    # Without the rule, the least recently used slot overall.
    plain = SlotTable(5)
    for mine, theirs in zip(plain.slots, table.slots, strict=True):
        mine.cached, mine.last_used, mine.prompt = theirs.cached, theirs.last_used, theirs.prompt
    placed = plain.place([1, 2, 3])
    assert placed is not None and placed.slot is plain.slots[1]


def test_running_slots_split_into_two_runs_are_gathered_into_one() -> None:
    table = SlotTable(6, contiguous=True)
    for i in (0, 1, 4):
        table.slots[i].prompt = table.slots[i].cached = [i] * 3
    table.slots[2].cached = [9, 9]
    moves = table.gathering_moves(most=4)
    # The window 0-2 holds two of the three; the one outside moves into its free slot.
    assert [(a.sequence, b.sequence) for a, b in moves] == [(4, 2)]
    moved, into = moves[0]
    table.swap(moved, into)
    assert [s.busy for s in table.slots] == [True, True, True, False, False, False]
    assert all(s.sequence == i for i, s in enumerate(table.slots))
    assert table.slots[2] is moved and moved.cached == [4] * 3 and into.cached == []
    assert table.gathering_moves(most=4) == []
    # A unified cache computes any set of sequences in one pass: nothing to gather.
    plain = SlotTable(6)
    for i in (0, 4):
        plain.slots[i].prompt = [1]
    assert plain.gathering_moves(most=4) == []
