"""What the Slack listeners are given: plain services, built by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from bot.advisor import Advisor
from bot.notifier import SlackNotifier
from provisioning.lifecycle import VmService
from provisioning.people import PeopleService
from provisioning.service import RequestService


@dataclass(frozen=True)
class Services:
    requests: RequestService
    vms: VmService
    people: PeopleService
    advisor: Advisor
    notifier: SlackNotifier
    slow_advisor: bool = False  # an LLM answers in seconds, not milliseconds
