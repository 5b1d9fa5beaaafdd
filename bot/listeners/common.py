"""Reading identity out of Slack payloads: from the signed body, never from button values."""

from __future__ import annotations

from typing import Any

from provisioning.errors import DomainError
from provisioning.people import Actor


class BadPayload(DomainError):
    pass


def actor_from(body: dict[str, Any]) -> Actor:
    user = body.get("user")
    if isinstance(user, dict):  # interactivity payloads
        user_id = user.get("id")
        team_id = (body.get("team") or {}).get("id") or user.get("team_id")
    else:  # slash commands and events
        user_id = body.get("user_id") or (body.get("event") or {}).get("user")
        team_id = body.get("team_id")
    if not user_id or not team_id:
        raise BadPayload("Slack sent a request without a user or team, so I ignored it.")
    # In a channel shared with another organisation, people of that organisation are not ours:
    # they get no role here, not even the default one.
    event = body.get("event") or {}
    own_team = (user.get("team_id") if isinstance(user, dict) else None) or event.get("user_team")
    if own_team and own_team != team_id:
        raise BadPayload("Only members of this workspace can use vmbot here.")
    return Actor(team_id=str(team_id), user_id=str(user_id))


def request_id_from(value: object) -> int:
    try:
        request_id = int(str(value))
    except ValueError:
        raise BadPayload("That button does not belong to a request I know.") from None
    if request_id <= 0:
        raise BadPayload("That button does not belong to a request I know.")
    return request_id
