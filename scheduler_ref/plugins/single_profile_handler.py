"""single-profile-handler: run the one scheduling profile and use its result."""

from __future__ import annotations

from scheduler_ref.plugins.base import ProfileHandler


class SingleProfileHandler(ProfileHandler):
    type_name = "single-profile-handler"
