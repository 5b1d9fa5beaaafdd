"""The Slack side of provisioning's Notifier: redraws cards and posts threaded updates."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from provisioning.views import RequestView

log = logging.getLogger(__name__)


class SlackNotifier:
    def __init__(self, client: WebClient, *, admin_channel: str | None = None) -> None:
        self._client = client
        self._admin_channel = admin_channel

    def request_changed(
        self, view: RequestView, event: str | None = None, detail: str = ""
    ) -> None:
        try:
            self._deliver(view, event, detail)
        except (SlackApiError, OSError) as exc:
            # The job's state is in the database; a missed message must not fail the job.
            log.warning("could not update Slack for request %s (%s): %s", view.id, event, exc)

    def _deliver(self, view: RequestView, event: str | None, detail: str) -> None:
        if view.channel and view.message_ts:
            self._client.chat_update(
                channel=view.channel,
                ts=view.message_ts,
                text=blocks.card_text(view),
                blocks=blocks.suggestion_card(view),
            )
        if view.admin_channel and view.admin_message_ts:
            self._client.chat_update(
                channel=view.admin_channel,
                ts=view.admin_message_ts,
                text=blocks.card_text(view),
                blocks=blocks.admin_card(view),
            )
        note = blocks.status_note(view, event, detail) if event else None
        if note and view.channel and view.thread_ts:
            self._client.chat_postMessage(channel=view.channel, thread_ts=view.thread_ts, text=note)
        if self._admin_channel and event == "failed":
            self._client.chat_postMessage(
                channel=self._admin_channel,
                text=f"Provisioning failed for {view.spec.name}",
                blocks=blocks.failure_alert(view, detail),
            )

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


class NullNotifier:
    """For the CLI: nothing to tell anyone."""

    def request_changed(
        self, view: RequestView, event: str | None = None, detail: str = ""
    ) -> None:
        return None
