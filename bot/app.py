"""The Bolt app factory. Nothing here runs at import time."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk import WebClient

from bot import listeners
from bot.services import Services
from provisioning.settings import Settings


def build_app(settings: Settings, services: Services, client: WebClient) -> App:
    logger = logging.getLogger("vmbot.slack")
    logger.addFilter(_ClientGivenFilter())
    app = App(
        client=client,
        signing_secret=settings.secret("slack_signing_secret"),
        logger=logger,
        # Slack's 3-second limit: ack is sent as soon as a listener calls ack(), and the
        # listener goes on in Bolt's thread pool.
        process_before_response=False,
    )
    app.middleware(_skip_event_retries)
    listeners.register(app, services)
    return app


def _skip_event_retries(
    req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
) -> BoltResponse:
    """Every event is acked at once, so a retry (X-Slack-Retry-Num) means Slack missed our
    answer, not that we missed the event: doing it again would post a second card."""
    if req.headers.get("x-slack-retry-num") and req.body.get("type") == "event_callback":
        return BoltResponse(status=200, body="")
    return next()


class _ClientGivenFilter(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN goes unused when a client is given: that is the design
    (the client carries the token and our retry handlers), so the warning only confuses."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()
