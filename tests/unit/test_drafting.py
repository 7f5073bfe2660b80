"""Prompt lookup: which tokens a sequence drafts from its prompt and answer, and how many."""

from __future__ import annotations

from privserve.engine.llama.drafting import LookupShape, PromptLookup, even_out


def lookup(prompt: list[int], max_draft: int = 4) -> PromptLookup:
    return PromptLookup(prompt, LookupShape(max_draft))


def test_drafts_what_followed_the_answers_last_tokens_in_the_prompt() -> None:
    drafts = lookup([10, 11, 12, 13, 14, 15, 16], max_draft=8)
    drafts.extend([11, 12])
    assert drafts.draft(3) == [13, 14, 15]


def test_the_longest_matching_run_decides_over_a_later_shorter_one() -> None:
    # (1, 2, 3) is followed by 7; the later (2, 3) by 8: the three-token match is surer.
    drafts = lookup([1, 2, 3, 7, 5, 2, 3, 8, 6])
    drafts.extend([1, 2, 3])
    assert drafts.draft(1) == [7]


def test_of_equal_matches_the_latest_occurrence_decides() -> None:
    drafts = lookup([4, 5, 6, 9, 4, 5, 7])
    drafts.extend([0, 4, 5])
    assert drafts.draft(1) == [7]


def test_the_answer_so_far_is_looked_up_too() -> None:
    drafts = lookup([30, 31])
    drafts.extend([1, 2, 3, 4, 1, 2])  # the answer repeats itself
    assert drafts.draft(2) == [3, 4]


def test_a_single_matching_token_is_not_enough_and_no_match_drafts_nothing() -> None:
    drafts = lookup([1, 2, 3, 4])
    drafts.extend([9, 2])
    assert drafts.draft(4) == []


def test_a_draft_stops_at_the_end_of_what_is_known_and_at_the_limit() -> None:
    drafts = lookup([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    drafts.extend([1, 2])
    assert drafts.draft(2) == [3, 4]
    assert drafts.draft(0) == []
    short = lookup([7, 8], max_draft=8)
    short.extend([7, 8])  # only these two tokens are known to follow (7, 8)
    assert short.draft(8) == [7, 8]


def test_the_draft_length_follows_the_recent_acceptance() -> None:
    drafts = lookup(list(range(100)) * 2, max_draft=8)
    drafts.extend([10, 11])
    full = len(drafts.draft(8))
    for _ in range(4):
        drafts.checked(8, 8)
    assert len(drafts.draft(8)) == 8 >= full
    for _ in range(2):
        drafts.checked(8, 1)
    assert 0 < len(drafts.draft(8)) < 8


def test_a_sequence_whose_drafts_are_wrong_stops_drafting_then_tries_again() -> None:
    drafts = lookup(list(range(50)) * 2, max_draft=8)
    drafts.extend([10, 11])
    for _ in range(6):
        drafts.checked(8, 0)
    assert drafts.draft(8) == []
    # Each step without a draft lets the estimate recover.
    tries = 0
    while not drafts.draft(8):
        tries += 1
        assert tries < 20
    assert tries > 0


def test_drafts_are_evened_out_to_the_longest_within_every_room() -> None:
    """Split KV streams compute equal rows per sequence in one pass: shorter drafts are
    filled (repeating their last token), longer ones cut to the smallest room."""
    assert even_out([[5, 6, 7], [], [8]], [4, 4, 4], [1, 2, 3]) == [
        [5, 6, 7],
        [2, 2, 2],
        [8, 8, 8],
    ]
    assert even_out([[5, 6, 7], [8]], [4, 2], [1, 2]) == [[5, 6], [8, 8]]
    # A sequence that may not draft (a grammar, its last token) means no drafts at all.
    assert even_out([[5, 6, 7], [8]], [4, 0], [1, 2]) == [[], []]
    assert even_out([[], []], [4, 4], [1, 2]) == [[], []]
