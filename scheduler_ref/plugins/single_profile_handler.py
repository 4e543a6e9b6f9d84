"""single-profile-handler: run the one scheduling profile and use its result."""

from __future__ import annotations

from scheduler_ref.plugins.base import ProfileHandler
from scheduler_ref.registry import register


@register("single-profile-handler")
class SingleProfileHandler(ProfileHandler):
    pass
