"""Slack listeners. Each does four things: ack, parse, call a service, render."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, commands, errors, events, views
from bot.services import Services


def register(app: App, services: Services) -> None:
    commands.register(app, services)
    actions.register(app, services)
    views.register(app, services)
    events.register(app, services)
    errors.register(app)
