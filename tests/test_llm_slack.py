"""Through Slack with the LLM advisor configured: the user hears "Thinking…" while the model
works, then gets the card marked (AI). Real Bolt app over HTTP, the Slack emulator, the real
openai client against the fake OpenAI server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import waitress

from bot.app import build_app
from bot.bootstrap import build_runtime
from bot.slack_emulator import SlackEmulator
from bot.slack_wire import SlackWire
from bot.web import WebApp
from provisioning.settings import Settings
from tests.conftest import SIGNING_SECRET, unique
from tests.fakes.openai_server import Delay, FakeOpenAI, answer_json

THINKING = "🤔 Thinking about your request…"


@pytest.fixture
def llm_stack(stack_env: dict, emulator: SlackEmulator) -> Iterator[tuple[SlackWire, FakeOpenAI]]:
    with FakeOpenAI() as fake:
        env = {**stack_env, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.base_url}
        settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
        runtime = build_runtime(settings)
        app = build_app(settings, runtime.services(), runtime.client)
        web = WebApp(app, {"database": runtime.check_database, "broker": runtime.check_broker})
        server = waitress.create_server(web, host="127.0.0.1", port=0, threads=4)
        threading.Thread(target=server.run, daemon=True).start()
        url = f"http://127.0.0.1:{server.effective_port}/slack/events"
        yield SlackWire(SIGNING_SECRET, url, team_id="T0TEST"), fake
        server.close()
        runtime.close()


def test_slash_command_says_it_is_thinking_then_posts_the_ai_card(
    llm_stack: tuple[SlackWire, FakeOpenAI], emulator: SlackEmulator
) -> None:
    wire, fake = llm_stack
    user, channel = unique("U"), unique("C")
    llm_answer = {
        "machine_type": None, "vcpus": None, "memory_gb": None, "gpu_type": None,
        "gpu_count": None, "os_image": None, "region": "europe-west2", "disk_gb": None,
        "disk_type": None, "spot": False, "packages": ["flask", "redis"], "ttl_hours": 3,
        "no_expiry": False,
    }  # fmt: skip
    fake.reply(Delay(1.0, answer_json(llm_answer)))
    response_url = emulator.make_response_url(channel=channel, user=user)
    reply = wire.send(
        wire.slash_command(
            user=user,
            channel=channel,
            text="flask + redis in London, 3h",
            response_url=response_url,
        )
    )
    assert reply.status == 200

    thinking = emulator.wait_for(
        lambda e: next((r for r in e.responses if r.payload.get("text") == THINKING), None)
    )
    assert thinking.payload.get("response_type") == "ephemeral"
    assert not [
        m for m in emulator.messages(channel) if not m.thread_ts and not m.ephemeral_user
    ], "card came too early"

    card = emulator.wait_for(
        lambda e: next(
            (m for m in e.messages(channel) if not m.thread_ts and not m.ephemeral_user), None
        )
    )
    assert "(AI)" in json.dumps(card.blocks, ensure_ascii=False)
    assert "europe-west2" in json.dumps(card.blocks)
    assert fake.requests[0].body["messages"][1]["content"] == "flask + redis in London, 3h"
