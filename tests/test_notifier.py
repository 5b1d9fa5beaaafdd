"""The Slack notifier against the emulator: redraws are deduplicated and spaced, 429s retried."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from bot.bootstrap import slack_client
from bot.notifier import SlackNotifier
from bot.slack_emulator import SlackEmulator
from db.models import RequestStatus
from provisioning.settings import Settings
from tests.test_blocks import VIEW


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    with SlackEmulator(bot_token="xoxb-notifier") as emulator:
        yield emulator


def notifier(emu: SlackEmulator, naps: list[float], interval: float = 1.0) -> SlackNotifier:
    settings = Settings(_env_file=None, slack_bot_token="xoxb-notifier", slack_api_url=emu.base_url)
    return SlackNotifier(slack_client(settings), min_update_interval=interval, sleep=naps.append)


def posted_card(emu: SlackEmulator) -> tuple[str, str]:
    settings = Settings(_env_file=None, slack_bot_token="xoxb-notifier", slack_api_url=emu.base_url)
    message = slack_client(settings).chat_postMessage(channel="C1", text="card")
    return str(message["channel"]), str(message["ts"])


def test_identical_redraws_are_skipped_and_changes_spaced(emu: SlackEmulator) -> None:
    naps: list[float] = []
    tell = notifier(emu, naps)
    channel, ts = posted_card(emu)
    view = replace(VIEW, channel=channel, message_ts=ts, thread_ts=ts)
    tell.request_changed(view)
    tell.request_changed(view)  # nothing changed: no second chat.update
    assert len(emu.calls_to("chat.update")) == 1
    assert naps == []
    tell.request_changed(replace(view, status=RequestStatus.CANCELLED))
    assert len(emu.calls_to("chat.update")) == 2
    assert len(naps) == 1 and 0 < naps[0] <= 1.0  # the second redraw waited its turn


def test_rate_limited_update_is_retried(emu: SlackEmulator) -> None:
    tell = notifier(emu, [], interval=0)
    channel, ts = posted_card(emu)
    emu.fail_next("chat.update", error="ratelimited", status=429, retry_after=1)
    tell.request_changed(replace(VIEW, channel=channel, message_ts=ts, thread_ts=ts), "cancelled")
    updates = emu.calls_to("chat.update")
    assert [c.ok for c in updates] == [False, True]
    assert emu.thread(channel, ts)[0].text == "Cancelled. Nothing was created."


def test_slack_being_down_never_fails_the_caller(emu: SlackEmulator) -> None:
    tell = notifier(emu, [], interval=0)
    emu.fail_next("chat.update", error="internal_error", status=500, retry_after=0, times=5)
    tell.request_changed(replace(VIEW, channel="C1", message_ts="1.0", thread_ts="1.0"))
