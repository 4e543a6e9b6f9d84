"""What the simulated model says: the chat template and planned output tokens.

``random`` mode emits 3-letter words with a leading space, so the output text re-tokenizes
to exactly ``completion_tokens`` tokens; it is deterministic under the request's ``seed`` (or
the process seed plus a request counter). ``echo`` mode returns the prompt's tokens (for
chat, the last user message's). By default the output is exactly ``max_tokens`` long
(load tests want determinism); ``--eos-probability`` > 0 lets random mode stop early unless
the request sets ``ignore_eos``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from simulator.tokenizer import pieces, token_id

__all__ = ["OutputPlan", "OutputPlanner", "render_chat"]

_WORDS = (  # noqa: SIM905 - a word list reads better as text
    "the and for are but not you all any can had her was one our out day get has him his how "
    "man new now old see two way who boy did its let put say she too use act add age ago air "
    "arm art ask bad bag bed big bit box bus buy car cat cup cut dog dry ear eat egg end eye "
    "far few fit fly fun gas god gun hat hit hot ice job key kid law lay leg lie lot low map"
).split()
WORD_TEXTS = tuple(" " + w for w in _WORDS)
WORD_IDS = tuple(token_id(t) for t in WORD_TEXTS)


def render_chat(messages: Sequence[Mapping[str, str]]) -> str:
    """The fixed chat template: ``<|role|>\\ncontent\\n`` per message, then the assistant cue."""
    parts = [f"<|{m['role']}|>\n{m['content']}\n" for m in messages]
    parts.append("<|assistant|>\n")
    return "".join(parts)


@dataclass(frozen=True)
class OutputPlan:
    """The tokens a request will emit and why it stops (``length`` or ``stop``)."""

    token_ids: list[int]
    texts: list[str]
    finish_reason: str


class OutputPlanner:
    """Plans outputs per the ``--mode``, ``--seed`` and ``--eos-probability`` flags."""

    def __init__(self, mode: str = "random", seed: int = 0, eos_probability: float = 0.0) -> None:
        if mode not in ("random", "echo"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.seed = seed
        self.eos_probability = eos_probability
        self._counter = 0

    def plan(
        self, echo_text: str, max_tokens: int, ignore_eos: bool, seed: int | None
    ) -> OutputPlan:
        """Output for one request; ``echo_text`` is what echo mode repeats."""
        self._counter += 1
        if self.mode == "echo":
            echoed = pieces(echo_text)
            if echoed:
                texts = echoed[:max_tokens]
                reason = "length" if len(echoed) > max_tokens else "stop"
                if ignore_eos and len(texts) < max_tokens:  # keep going: repeat the prompt
                    while len(texts) < max_tokens:
                        texts.extend(echoed[: max_tokens - len(texts)])
                    reason = "length"
                return OutputPlan([token_id(t) for t in texts], texts, reason)
        rng = random.Random(seed if seed is not None else (self.seed << 32) + self._counter)
        n, reason = max_tokens, "length"
        p = self.eos_probability
        if p > 0 and not ignore_eos:
            for i in range(max_tokens):
                if rng.random() < p:
                    n, reason = i + 1, "stop"
                    break
        idx = [rng.randrange(len(WORD_TEXTS)) for _ in range(n)]
        return OutputPlan([WORD_IDS[i] for i in idx], [WORD_TEXTS[i] for i in idx], reason)
