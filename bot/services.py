"""What the Slack listeners are given: plain services, built by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from bot.advisor import Advisor
from bot.notifier import SlackNotifier
from provisioning.service import RequestService


@dataclass(frozen=True)
class Services:
    requests: RequestService
    advisor: Advisor
    notifier: SlackNotifier
