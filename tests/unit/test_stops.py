"""The stop matcher finds stops split across tokens and never emits them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from privserve.engine.stops import StopMatcher


def run(pieces: list[str], stops: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    out = "".join(matcher.feed(p) for p in pieces)
    return out + matcher.flush(), matcher.stopped


def test_stop_split_across_pieces() -> None:
    assert run(["Hello wo", "rld, bye"], ["world"]) == ("Hello ", True)


def test_earliest_stop_wins() -> None:
    assert run(["a b c d"], ["c", "b"]) == ("a ", True)


def test_held_prefix_is_released_when_it_turns_out_not_to_stop() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("the E") == "the "  # "E" may start the stop: held
    assert matcher.feed("NTRY") == "ENTRY"  # it did not: released whole
    assert not matcher.stopped


def test_held_prefix_is_dropped_when_it_completes_the_stop() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("the E") == "the "
    assert matcher.feed("ND more") == ""
    assert matcher.stopped and matcher.flush() == ""


def test_no_stops_passes_everything() -> None:
    assert run(["a", "b"], []) == ("ab", False)


@given(st.text(), st.lists(st.integers(min_value=0, max_value=50)), st.text(min_size=1, max_size=5))
def test_output_is_the_text_before_the_first_stop(text: str, cuts: list[int], stop: str) -> None:
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    out, stopped = run(pieces, [stop])
    if stop in text:
        assert stopped and out == text[: text.index(stop)]
    else:
        assert not stopped and out == text
