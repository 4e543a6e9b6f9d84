"""random-picker: uniform choice, ignoring scores (the v0.2 guide's low-latency profile)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from scheduler_ref.plugins.base import Picker
from scheduler_ref.types import Endpoint


class RandomPicker(Picker):
    type_name = "random-picker"
    def pick(
        self, scored: Sequence[tuple[Endpoint, float]], rng: random.Random
    ) -> list[Endpoint]:
        endpoints = [e for e, _ in scored]
        return rng.sample(endpoints, min(self.max_endpoints, len(endpoints)))
