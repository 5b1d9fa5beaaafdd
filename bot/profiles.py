"""People's email and display name, from Slack's users.info."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from provisioning.people import Profile

log = logging.getLogger(__name__)


class SlackProfiles:
    def __init__(self, client: WebClient) -> None:
        self._client = client

    def profile(self, user_id: str) -> Profile | None:
        try:
            user = self._client.users_info(user=user_id)["user"]
        except (SlackApiError, OSError) as exc:
            log.warning("users.info failed for %s: %s", user_id, exc)
            return None
        profile = user.get("profile") or {}
        name = profile.get("display_name") or profile.get("real_name") or user.get("name")
        return Profile(email=profile.get("email"), display_name=name)
