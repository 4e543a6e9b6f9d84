"""weighted-random-picker: choice proportional to score (A-Res keys, without replacement).

All-zero scores fall back to a uniform choice.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from scheduler_ref.plugins.base import Picker
from scheduler_ref.types import Endpoint


class WeightedRandomPicker(Picker):
    type_name = "weighted-random-picker"
    def pick(
        self, scored: Sequence[tuple[Endpoint, float]], rng: random.Random
    ) -> list[Endpoint]:
        if not any(s > 0 for _, s in scored):
            endpoints = [e for e, _ in scored]
            return rng.sample(endpoints, min(self.max_endpoints, len(endpoints)))
        keyed = []
        for e, s in scored:
            if s > 0:
                keyed.append((rng.random() ** (1.0 / s), e))
        keyed.sort(key=lambda k: k[0], reverse=True)
        return [e for _, e in keyed[: self.max_endpoints]]
