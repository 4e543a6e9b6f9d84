"""max-score-picker: highest weighted total wins; shuffle first so ties break at random."""

from __future__ import annotations

import random
from collections.abc import Sequence

from scheduler_ref.plugins.base import Picker
from scheduler_ref.types import Endpoint


class MaxScorePicker(Picker):
    type_name = "max-score-picker"
    def pick(
        self, scored: Sequence[tuple[Endpoint, float]], rng: random.Random
    ) -> list[Endpoint]:
        if self.max_endpoints == 1 and scored:
            # Same distribution as shuffle-then-sort (uniform over the tied best), without
            # shuffling every candidate on the hot path.
            best = max(total for _, total in scored)
            return [rng.choice([e for e, total in scored if total == best])]
        items = list(scored)
        rng.shuffle(items)
        items.sort(key=lambda it: it[1], reverse=True)  # stable: shuffled order breaks ties
        return [e for e, _ in items[: self.max_endpoints]]
