"""Stages and rate ladders as a Locust ``LoadTestShape``.  (Locust side.)

Closed loop: the stage's ``users`` (or the spec's) run concurrently. Open loop: the user
count is only the concurrency cap (the pacer sets the rate), so it stays at the largest
count for the whole run. The coordinator, not the shape, ends the run (so users are never
stopped twice).
"""

from __future__ import annotations

from locust import LoadTestShape

from loadtests import pacing

__all__ = ["LLMShape"]


class LLMShape(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        runner = self.runner
        assert runner is not None
        end = pacing.active(runner.environment)
        if not isinstance(end, pacing.Coordinator):
            return None
        spec = end.spec
        users = spec.max_users()
        if spec.arrival == "closed" and spec.stages:
            t = self.get_run_time()
            for stage in spec.stages:
                if t < stage.duration_s:
                    users = stage.users or spec.users
                    break
                t -= stage.duration_s
        return users, spec.spawn_rate or float(users)
