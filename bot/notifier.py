"""The Slack side of provisioning's Notifier: redraws cards and posts threaded updates."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from provisioning.views import RequestView

log = logging.getLogger(__name__)

# Changes worth redrawing someone's App Home for (not every progress line).
HOME_EVENTS = frozenset(
    {"queued", "running", "failed", "stopped", "destroyed", "extended", "rejected", "expired",
     "pending_approval", "cancelled"}
)  # fmt: skip


class SlackNotifier:
    def __init__(
        self,
        client: WebClient,
        *,
        admin_channel: str | None = None,
        refresh_home: Callable[[RequestView], None] | None = None,
        min_update_interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._admin_channel = admin_channel
        self._interval = min_update_interval
        self._sleep = sleep
        self._lock = threading.Lock()
        # (channel, ts) -> (hash of what it shows, when it was last updated)
        self._shown: dict[tuple[str, str], tuple[int, float]] = {}
        # Set by the composition root: redraws the requester's App Home after a change.
        self.refresh_home = refresh_home

    def request_changed(
        self, view: RequestView, event: str | None = None, detail: str = ""
    ) -> None:
        try:
            self._deliver(view, event, detail)
        except (SlackApiError, OSError) as exc:
            # The job's state is in the database; a missed message must not fail the job.
            log.warning("could not update Slack for request %s (%s): %s", view.id, event, exc)

    def _update(self, channel: str, ts: str, text: str, card: list[dict]) -> None:
        """chat.update, skipped when the message already shows this, and spaced out per
        message: Slack rate-limits chat.update (Tier 3), and a burst of progress would hit it."""
        key, shown = (channel, ts), hash(json.dumps(card, sort_keys=True) + text)
        with self._lock:
            previous, at = self._shown.get(key, (None, 0.0))
            if previous == shown:
                return
            wait = at + self._interval - time.monotonic()
            self._shown[key] = (shown, max(time.monotonic(), at + self._interval))
            if len(self._shown) > 10_000:  # a long-lived process must not grow without bound
                self._shown.clear()
        if wait > 0:
            self._sleep(wait)
        self._client.chat_update(channel=channel, ts=ts, text=text, blocks=card)

    def _deliver(self, view: RequestView, event: str | None, detail: str) -> None:
        if view.channel and view.message_ts:
            self._update(
                view.channel, view.message_ts, blocks.card_text(view), blocks.suggestion_card(view)
            )
        if view.admin_channel and view.admin_message_ts:
            self._update(
                view.admin_channel,
                view.admin_message_ts,
                blocks.card_text(view),
                blocks.admin_card(view),
            )
        note = blocks.status_note(view, event, detail) if event else None
        if note and view.channel and view.thread_ts:
            self._client.chat_postMessage(channel=view.channel, thread_ts=view.thread_ts, text=note)
        if event in HOME_EVENTS and self.refresh_home is not None:
            self.refresh_home(view)
        if event == "expiring" and view.vm is not None:
            self._client.chat_postMessage(
                channel=view.requester,  # a DM: Slack opens the IM for a user id
                text=f"{view.spec.name} expires soon",
                blocks=blocks.expiry_reminder(view),
            )
        if self._admin_channel and event == "failed":
            self._client.chat_postMessage(
                channel=self._admin_channel,
                text=f"Provisioning failed for {view.spec.name}",
                blocks=blocks.failure_alert(view, detail),
            )

    def admin_alert(self, text: str) -> None:
        if not self._admin_channel:
            log.warning("admin alert with no VMBOT_ADMIN_CHANNEL set: %s", text)
            return
        try:
            self._client.chat_postMessage(channel=self._admin_channel, text=f"⚠️ {text}")
        except (SlackApiError, OSError) as exc:
            log.warning("could not alert the admin channel (%s): %s", exc, text)

    def post_admin_card(self, view: RequestView) -> tuple[str, str] | None:
        """Post the request to the admin channel; returns (channel, ts), or None if none is set."""
        if not self._admin_channel:
            return None
        posted = self._client.chat_postMessage(
            channel=self._admin_channel,
            text=f"Approval needed for {view.spec.name}",
            blocks=blocks.admin_card(view),
        )
        return str(posted["channel"]), str(posted["ts"])
