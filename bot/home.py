"""App Home: one function draws it, for `app_home_opened` and after every change."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.blocks import home_view
from provisioning.lifecycle import VmService
from provisioning.people import Actor
from provisioning.service import RequestService


def publish_home(client: WebClient, requests: RequestService, vms: VmService, actor: Actor) -> None:
    mine, queue = requests.open_requests(actor)
    view = home_view(vms.list_vms(actor), vms.now(), pending=mine, queue=queue)
    client.views_publish(user_id=actor.user_id, view=view)
