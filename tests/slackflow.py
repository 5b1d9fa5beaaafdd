"""Driving the app the way Slack does: signed commands and clicks, read back from the emulator."""

from __future__ import annotations

import time

from slack_sdk.models.blocks import Block
from sqlalchemy import select

from bot.slack_emulator import Message, SlackEmulator
from bot.slack_wire import WireResponse
from db.models import VmRequest
from tests.conftest import Stack

DJANGO = "I need a Django dev server with Postgres and Redis for 2 hours"


def assert_valid_blocks(blocks: list[dict]) -> None:
    assert 0 < len(blocks) <= 50
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()


def buttons(message: Message) -> dict[str, dict]:
    return {
        element["action_id"]: element
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    }


def ask(stack: Stack, user: str, channel: str, text: str = DJANGO) -> Message:
    response_url = stack.emulator.make_response_url(channel=channel, user=user)
    reply = stack.wire.send(
        stack.wire.slash_command(user=user, channel=channel, text=text, response_url=response_url)
    )
    assert reply.status == 200, reply.body
    card = stack.emulator.wait_for(
        lambda emu: next((m for m in emu.messages(channel) if not m.thread_ts), None)
    )
    # The app records where the card is just after Slack answers the post; a person could not
    # reply faster than that, a test can.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with stack.runtime.sessions() as session:
            if session.scalar(select(VmRequest.id).where(VmRequest.thread_ts == card.ts)):
                return card
        time.sleep(0.02)
    raise AssertionError(f"the card {card.ts} was never attached to its request")


def click(stack: Stack, user: str, card: Message, action_id: str) -> WireResponse:
    button = buttons(card)[action_id]
    return stack.wire.send(
        stack.wire.block_action(
            user=user,
            channel=card.channel,
            message_ts=card.ts,
            action_id=action_id,
            value=button["value"],
            response_url=stack.emulator.make_response_url(
                channel=card.channel, user=user, message_ts=card.ts
            ),
        )
    )


def thread_texts(emu: SlackEmulator, card: Message) -> list[str]:
    return [m.text for m in emu.thread(card.channel, card.ts)]


def command(stack: Stack, user: str, channel: str, text: str) -> WireResponse:
    """A signed /vm; its ephemeral answers arrive at a response URL for this channel."""
    reply = stack.wire.send(
        stack.wire.slash_command(
            user=user,
            channel=channel,
            text=text,
            response_url=stack.emulator.make_response_url(channel=channel, user=user),
            trigger_id=stack.emulator.make_trigger_id(user),
        )
    )
    assert reply.status == 200, reply.body
    return reply


def answers(emu: SlackEmulator, channel: str) -> list[str]:
    return [r.payload.get("text", "") for r in emu.responses if r.channel == channel]


def wait_answer(emu: SlackEmulator, channel: str, contains: str, timeout: float = 10) -> str:
    return emu.wait_for(
        lambda e: next((t for t in answers(e, channel) if contains in t), None), timeout=timeout
    )
