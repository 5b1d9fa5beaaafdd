"""Contract tests for the Slack emulator, driven by the real slack_sdk clients over HTTP.

If these pass, code that works against the emulator sends what Slack's Web API accepts and can
read back what Slack would answer.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from bot.slack_emulator import Message, SlackEmulator

TOKEN = "xoxb-test-emulator"
CHANNEL = "C0DEVOPS"

CARD_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*django-dev-3f2a* · suggested"}},
    {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
            }
        ],
    },
]

MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "vm_request",
    "title": {"type": "plain_text", "text": "New VM"},
    "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "Describe it"}}],
}


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    with SlackEmulator(bot_token=TOKEN) as emu:
        yield emu


@pytest.fixture
def client(emulator: SlackEmulator) -> WebClient:
    return WebClient(token=TOKEN, base_url=emulator.base_url)


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        body: dict[str, Any] = json.loads(resp.read())
        return body


def test_base_url_is_what_web_client_expects(emulator: SlackEmulator) -> None:
    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert emulator.base_url.endswith("/api/")


def test_auth_test_identifies_the_bot(emulator: SlackEmulator, client: WebClient) -> None:
    resp = client.auth_test()

    assert resp["ok"] is True
    assert resp["user_id"] == emulator.bot_user_id
    assert resp["team_id"] == emulator.team_id
    assert resp["bot_id"]
    assert [c.method for c in emulator.calls] == ["auth.test"]


def test_card_is_posted_updated_and_threaded(emulator: SlackEmulator, client: WebClient) -> None:
    posted = client.chat_postMessage(channel=CHANNEL, text="VM suggestion", blocks=CARD_BLOCKS)
    card_ts = posted["ts"]
    assert posted["channel"] == CHANNEL
    assert posted["message"]["blocks"] == CARD_BLOCKS

    approved = [{"type": "section", "text": {"type": "mrkdwn", "text": "Approved by @maria"}}]
    updated = client.chat_update(channel=CHANNEL, ts=card_ts, text="Approved", blocks=approved)
    assert updated["ts"] == card_ts
    reply = client.chat_postMessage(channel=CHANNEL, thread_ts=card_ts, text="⏳ Queued")
    assert float(reply["ts"]) > float(card_ts)

    card = emulator.message(CHANNEL, card_ts)
    assert card is not None
    assert (card.text, card.blocks, card.updates) == ("Approved", approved, 1)
    assert [m.text for m in emulator.thread(CHANNEL, card_ts)] == ["⏳ Queued"]
    assert [m.ts for m in emulator.messages(CHANNEL)] == [card_ts, reply["ts"]]

    history = client.conversations_history(channel=CHANNEL)
    assert [m["ts"] for m in history["messages"]] == [card_ts]
    assert history["messages"][0]["reply_count"] == 1
    replies = client.conversations_replies(channel=CHANNEL, ts=card_ts)
    assert [m["text"] for m in replies["messages"]] == ["Approved", "⏳ Queued"]


def test_form_encoded_blocks_are_decoded(emulator: SlackEmulator, client: WebClient) -> None:
    # api_call with params sends application/x-www-form-urlencoded, blocks as a JSON string.
    resp = client.api_call(
        "chat.postMessage",
        params={"channel": CHANNEL, "text": "[form] card", "blocks": json.dumps(CARD_BLOCKS)},
    )

    assert resp["message"]["blocks"] == CARD_BLOCKS
    assert emulator.calls_to("chat.postMessage")[0].params["blocks"] == CARD_BLOCKS
    assert emulator.messages(CHANNEL)[0].text == "[form] card"


def test_ts_are_unique_and_increasing(client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel=CHANNEL, text=str(i))["ts"] for i in range(20)]

    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == len(stamps)


def test_update_of_unknown_message_is_message_not_found(
    emulator: SlackEmulator, client: WebClient
) -> None:
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel=CHANNEL, ts="1700000000.000100", text="nope")

    assert err.value.response["error"] == "message_not_found"
    assert emulator.calls_to("chat.update")[0].ok is False


def test_ephemeral_and_delete(emulator: SlackEmulator, client: WebClient) -> None:
    eph = client.chat_postEphemeral(channel=CHANNEL, user="U0MARIA", text="only you")
    posted = client.chat_postMessage(channel=CHANNEL, text="bye")
    client.chat_delete(channel=CHANNEL, ts=posted["ts"])

    [only] = emulator.messages(CHANNEL)
    assert (only.ts, only.ephemeral_user) == (eph["message_ts"], "U0MARIA")
    assert emulator.message(CHANNEL, posted["ts"]) is None
    assert client.conversations_history(channel=CHANNEL)["messages"] == []


def test_users_info_for_registered_and_unknown_users(
    emulator: SlackEmulator, client: WebClient
) -> None:
    emulator.add_user("U0MARIA", "maria", email="maria@corp.example")

    maria = client.users_info(user="U0MARIA")["user"]
    stranger = client.users_info(user="U0XYZ")["user"]

    assert (maria["name"], maria["profile"]["email"]) == ("maria", "maria@corp.example")
    assert maria["profile"]["display_name"] == "maria"
    assert stranger["id"] == "U0XYZ"
    assert stranger["profile"]["email"] == "u0xyz@example.com"
    assert stranger["real_name"]
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="not-a-user")
    assert err.value.response["error"] == "user_not_found"


def test_dm_channel_is_stable(emulator: SlackEmulator, client: WebClient) -> None:
    opened = client.conversations_open(users="U0MARIA")
    again = client.conversations_open(users=["U0MARIA"])
    posted = client.chat_postMessage(channel="U0MARIA", text="Your VM expires soon")

    assert opened["channel"]["id"] == again["channel"]["id"] == "DU0MARIA"
    assert posted["channel"] == "DU0MARIA"
    assert [m.text for m in emulator.messages("DU0MARIA")] == ["Your VM expires soon"]


def test_views_open_update_and_publish(emulator: SlackEmulator, client: WebClient) -> None:
    trigger_id = emulator.make_trigger_id("U0MARIA")
    opened = client.views_open(trigger_id=trigger_id, view=MODAL)["view"]
    assert opened["id"] and opened["callback_id"] == "vm_request"

    changed = {**MODAL, "title": {"type": "plain_text", "text": "Modify VM"}}
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    with pytest.raises(SlackApiError) as err:
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)
    assert err.value.response["error"] == "hash_conflict"

    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}],
    }
    first = client.views_publish(user_id="U0MARIA", view=home)["view"]
    second = client.views_publish(user_id="U0MARIA", view=home)["view"]
    assert first["id"] == second["id"]

    home_view = emulator.home_view("U0MARIA")
    assert home_view is not None and home_view.updates == 1
    modal = next(v for v in emulator.views if v.type == "modal")
    assert (modal.user, modal.view["title"]["text"]) == ("U0MARIA", "Modify VM")


def test_invalid_token_is_invalid_auth_and_recorded(emulator: SlackEmulator) -> None:
    intruder = WebClient(token="xoxb-wrong", base_url=emulator.base_url)

    with pytest.raises(SlackApiError) as err:
        intruder.chat_postMessage(channel=CHANNEL, text="hi")

    assert err.value.response["error"] == "invalid_auth"
    [call] = emulator.calls
    assert (call.method, call.ok, call.error) == ("chat.postMessage", False, "invalid_auth")
    assert "token" not in call.params
    assert emulator.messages() == []


def test_unknown_method(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.api_call("vm.teleport")
    assert err.value.response["error"] == "unknown_method"


def test_rate_limit_is_retried_by_the_sdk(emulator: SlackEmulator) -> None:
    client = WebClient(
        token=TOKEN,
        base_url=emulator.base_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    # retry_after=0 keeps the SDK's sleep under a second.
    emulator.fail_next("chat.postMessage", retry_after=0)

    resp = client.chat_postMessage(channel=CHANNEL, text="after the storm")

    assert resp["ok"] is True
    assert [(c.ok, c.error) for c in emulator.calls_to("chat.postMessage")] == [
        (False, "ratelimited"),
        (True, None),
    ]
    assert [m.text for m in emulator.messages(CHANNEL)] == ["after the storm"]


def test_fault_without_retry_handler_surfaces(emulator: SlackEmulator, client: WebClient) -> None:
    emulator.fail_next("chat.update", error="ratelimited", status=429, retry_after=7, times=2)

    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
        assert err.value.response.status_code == 429
        assert err.value.response.headers["Retry-After"] == "7"
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"


def test_response_url_posts_are_recorded(emulator: SlackEmulator) -> None:
    url = emulator.make_response_url(channel=CHANNEL, user="U0MARIA")
    webhook = WebhookClient(url)

    first = webhook.send(text="Working on it…")
    second = webhook.send(text="Here is your card", replace_original=True)
    public = webhook.send(text="@maria asked for a VM", response_type="in_channel")

    assert [r.status_code for r in (first, second, public)] == [200, 200, 200]
    assert [r.payload["text"] for r in emulator.responses] == [
        "Working on it…",
        "Here is your card",
        "@maria asked for a VM",
    ]
    ephemeral, shared = emulator.messages(CHANNEL)
    assert (ephemeral.text, ephemeral.ephemeral_user, ephemeral.updates) == (
        "Here is your card",
        "U0MARIA",
        1,
    )
    assert shared.ephemeral_user is None

    stale = WebhookClient(f"{emulator.url}/response/never-issued").send(text="lost")
    assert stale.status_code == 404
    assert emulator.responses[-1].ok is False


def test_wait_for_returns_the_predicate_value(emulator: SlackEmulator, client: WebClient) -> None:
    def post_later() -> None:
        time.sleep(0.1)
        client.chat_postMessage(channel=CHANNEL, thread_ts="1.000001", text="✅ Running")

    threading.Thread(target=post_later, daemon=True).start()

    def running(emu: SlackEmulator) -> Message | None:
        return next((m for m in emu.messages(CHANNEL) if m.text.startswith("✅")), None)

    found = emulator.wait_for(running, timeout=5)
    assert found.thread_ts == "1.000001"


def test_wait_for_timeout_explains_what_happened(
    emulator: SlackEmulator, client: WebClient
) -> None:
    client.chat_postMessage(channel=CHANNEL, text="🔧 Provisioning")

    started = time.monotonic()
    with pytest.raises(TimeoutError) as err:
        emulator.wait_for(lambda emu: emu.calls_to("views.open"), timeout=0.2)

    assert time.monotonic() - started < 2
    assert "chat.postMessage" in str(err.value)
    assert "🔧 Provisioning" in str(err.value)


def test_json_views_for_polling_ui(emulator: SlackEmulator, client: WebClient) -> None:
    first = client.chat_postMessage(channel=CHANNEL, text="one")
    client.chat_postMessage(channel="C0OTHER", text="elsewhere")
    client.chat_update(channel=CHANNEL, ts=first["ts"], text="one, edited")

    page = get_json(f"{emulator.url}/_emulator/messages?channel={CHANNEL}&since=0")
    assert [(m["text"], m["updates"]) for m in page["messages"]] == [("one, edited", 1)]
    assert page["next"] == 2
    assert get_json(f"{emulator.url}/_emulator/messages?since=1")["messages"][0]["text"] == (
        "elsewhere"
    )

    log = get_json(f"{emulator.url}/_emulator/events?since=0")
    assert [e["type"] for e in log["events"]] == ["posted", "posted", "updated"]
    later = get_json(f"{emulator.url}/_emulator/events?since={log['next']}")
    assert later["events"] == []
