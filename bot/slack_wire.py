"""Slack's wire format for requests *to* the app: signed slash commands, clicks and events.

The sandbox's chat uses it to talk to the app exactly as Slack would, and so do the tests.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier


@dataclass(frozen=True)
class WireResponse:
    status: int
    body: str


class SlackWire:
    def __init__(
        self, signing_secret: str, events_url: str, *, team_id: str = "T0EMULATOR"
    ) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self.events_url = events_url
        self.team_id = team_id
        self.app_id = "A0VMBOT"

    def headers(
        self, body: str, *, content_type: str, timestamp: int | None = None
    ) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._verifier.generate_signature(timestamp=ts, body=body)
        assert signature is not None, "slack_sdk signs any str body"
        return {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        }

    def slash_command(
        self, *, user: str, channel: str, text: str, response_url: str, trigger_id: str = ""
    ) -> str:
        return urlencode(
            {
                "team_id": self.team_id,
                "channel_id": channel,
                "user_id": user,
                "user_name": user.lower(),
                "command": "/vm",
                "text": text,
                "api_app_id": self.app_id,
                "response_url": response_url,
                "trigger_id": trigger_id or f"trigger-{uuid.uuid4().hex[:12]}",
            }
        )

    def block_action(
        self,
        *,
        user: str,
        channel: str,
        message_ts: str,
        action_id: str,
        value: str,
        block_id: str = "",
        response_url: str = "",
        trigger_id: str = "",
    ) -> str:
        payload = {
            "type": "block_actions",
            "api_app_id": self.app_id,
            "team": {"id": self.team_id},
            "user": {"id": user, "team_id": self.team_id, "username": user.lower()},
            "channel": {"id": channel},
            "container": {"type": "message", "channel_id": channel, "message_ts": message_ts},
            "message": {"type": "message", "ts": message_ts},
            "trigger_id": trigger_id or f"trigger-{uuid.uuid4().hex[:12]}",
            "response_url": response_url,
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": block_id,
                    "value": value,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return urlencode({"payload": json.dumps(payload)})

    def view_submission(
        self, *, user: str, callback_id: str, values: dict[str, dict[str, Any]], metadata: str = ""
    ) -> str:
        payload = {
            "type": "view_submission",
            "api_app_id": self.app_id,
            "team": {"id": self.team_id},
            "user": {"id": user, "team_id": self.team_id},
            "trigger_id": f"trigger-{uuid.uuid4().hex[:12]}",
            "view": {
                "id": f"V{uuid.uuid4().hex[:10].upper()}",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": metadata,
                "state": {"values": values},
            },
        }
        return urlencode({"payload": json.dumps(payload)})

    def event(self, event: dict[str, Any]) -> str:
        return json.dumps(
            {
                "type": "event_callback",
                "team_id": self.team_id,
                "api_app_id": self.app_id,
                "event": event,
                "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
                "event_time": int(time.time()),
            }
        )

    def send(
        self, body: str, *, timestamp: int | None = None, signature: str | None = None
    ) -> WireResponse:
        """POST a body as Slack would: JSON for events, form-encoded for everything else."""
        content_type = (
            "application/json" if body.startswith("{") else "application/x-www-form-urlencoded"
        )
        headers = self.headers(body, content_type=content_type, timestamp=timestamp)
        if signature is not None:
            headers["X-Slack-Signature"] = signature
        request = urllib.request.Request(
            self.events_url, data=body.encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return WireResponse(response.status, response.read().decode())
        except urllib.error.HTTPError as exc:
            return WireResponse(exc.code, exc.read().decode())
