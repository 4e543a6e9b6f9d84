"""The tokenizer contract shared with the load generator."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from simulator.generation import WORD_TEXTS
from simulator.tokenizer import VOCAB_SIZE, count_tokens, pieces, tokenize


def test_pieces_keep_leading_whitespace_and_split_at_four_chars() -> None:
    assert pieces(" abc") == [" abc"]
    assert pieces(" hello") == [" hel", "lo"]
    assert pieces("Hi, you!") == ["Hi", ",", " you", "!"]
    assert count_tokens(" hello") == 2


def test_three_letter_words_are_one_token_each() -> None:
    text = "".join(WORD_TEXTS)
    assert count_tokens(text) == len(WORD_TEXTS)
    assert all(count_tokens(w) == 1 for w in WORD_TEXTS)


def test_ids_are_stable_and_in_vocab() -> None:
    a = tokenize("the same text, twice")
    assert a == tokenize("the same text, twice")
    assert all(0 <= t < VOCAB_SIZE for t in a)
    assert tokenize(" abc")[0] != tokenize(" abd")[0]


@given(st.text(max_size=300))
def test_count_matches_tokenize(text: str) -> None:
    assert count_tokens(text) == len(tokenize(text)) == len(pieces(text))
    assert all(1 <= len(p) <= 4 for p in pieces(text))
