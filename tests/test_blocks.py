"""Block Kit builders: exact output for the main card, and Slack's limits for every shape."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot import blocks
from db.models import RequestStatus, VmStatus
from provisioning.spec import Cost, Gpu, VmSpec
from provisioning.views import RequestView, VmView

NOW = datetime(2026, 12, 4, 12, 30, tzinfo=UTC)

SPEC = VmSpec(
    name="django-dev-3f2a",
    machine_type="e2-standard-2",
    vcpus=2,
    memory_gb=8,
    os_image="ubuntu-2204-lts",
    disk_gb=30,
    region="us-central1",
    packages=("python3", "django", "postgresql", "redis"),
    ttl_hours=2,
    cost=Cost(usd_per_hour=0.0711, usd_total=0.1422),
    rationale="Django + PostgreSQL + Redis dev box → e2-standard-2",
)

VIEW = RequestView(
    id=42,
    status=RequestStatus.SUGGESTED,
    spec=SPEC,
    requester="U0MARIA",
    requester_team="T0TEST",
    original_text="I need a Django dev server with Postgres and Redis for 2 hours",
    policy_decision="allow",
    policy_reason="under $1/h, no GPU",
    policy_headroom="",
    approver=None,
    decided_at=None,
    channel="C1",
    thread_ts="1.0",
    message_ts="1.0",
    admin_channel=None,
    admin_message_ts=None,
    vm=None,
)


def validate(payload: list[dict], limit: int = 50) -> None:
    assert 0 < len(payload) <= limit
    for raw in payload:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()
        for text in _texts(raw):
            assert len(text) <= 3000


def _texts(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if isinstance(node.get("text"), str) else []
        return found + [t for value in node.values() for t in _texts(value)]
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    return []


def test_suggestion_card_exact() -> None:
    assert blocks.suggestion_card(VIEW) == [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "🖥  *django-dev-3f2a* · suggested for <@U0MARIA>\n"
                ">I need a Django dev server with Postgres and Redis for 2 hours",
            },
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*Machine*\ne2-standard-2 · 2 vCPU · 8 GB"},
                {"type": "mrkdwn", "text": "*Disk*\n30 GB pd-balanced"},
                {"type": "mrkdwn", "text": "*OS*\nUbuntu 22.04 LTS"},
                {"type": "mrkdwn", "text": "*Region*\nus-central1 (Iowa)"},
                {"type": "mrkdwn", "text": "*Installs*\npython3 · django · postgresql · redis"},
                {"type": "mrkdwn", "text": "*Expires*\n2 h after it starts"},
                {"type": "mrkdwn", "text": "*Cost*\n$0.071/h · ≈ $0.142 for 2 h"},
                {"type": "mrkdwn", "text": "*Policy*\n✅ auto-approve (under $1/h, no GPU)"},
            ],
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Why: Django + PostgreSQL + Redis dev box → e2-standard-2   "
                    "(rules engine)",
                }
            ],
        },
        {
            "type": "actions",
            "block_id": "request-42",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                    "action_id": blocks.APPROVE,
                    "value": "42",
                    "style": "primary",
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Modify", "emoji": True},
                    "action_id": blocks.MODIFY,
                    "value": "42",
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Cancel", "emoji": True},
                    "action_id": blocks.CANCEL,
                    "value": "42",
                    "style": "danger",
                },
            ],
        },
    ]


def running(view: RequestView) -> RequestView:
    vm = VmView(
        id=7,
        name=view.spec.name,
        status=VmStatus.RUNNING,
        region="us-central1",
        zone="us-central1-b",
        ip="203.0.113.7",
        detail="Running",
        expires_at=NOW + timedelta(hours=2),
        running_at=NOW,
    )
    return replace(view, status=RequestStatus.APPROVED, approver="U0MARIA", decided_at=NOW, vm=vm)


def test_running_card_replaces_buttons_with_status_and_connect_hint() -> None:
    card = blocks.suggestion_card(running(VIEW))
    assert all(b["type"] != "actions" for b in card)
    status = card[-1]["elements"][0]["text"]
    assert status.startswith("Approved by <@U0MARIA> at <!date^")
    assert (
        "✅ Running — 203.0.113.7 · `gcloud compute ssh django-dev-3f2a --zone us-central1-b"
        in status
    )


HOSTILE = "<!channel> <@U0BOSS> &amp; " + "x" * 10_000 + " 🎉" * 500


@pytest.mark.parametrize(
    "view",
    [
        VIEW,
        replace(VIEW, original_text=HOSTILE),
        replace(
            VIEW,
            policy_decision="needs_approval",
            policy_reason="GPU requested; " * 200,
            spec=SPEC.model_copy(update={"gpu": Gpu(type="nvidia-l4", count=1)}),
        ),
        replace(VIEW, policy_decision="deny", policy_reason="too big"),
        replace(VIEW, status=RequestStatus.PENDING_APPROVAL, policy_decision="needs_approval"),
        replace(VIEW, status=RequestStatus.CANCELLED, decided_at=NOW),
        replace(VIEW, status=RequestStatus.REJECTED, approver="U0BOSS", decided_at=NOW),
        running(VIEW),
        replace(
            running(VIEW),
            vm=replace(
                running(VIEW).vm,
                status=VmStatus.FAILED,  # type: ignore[type-var]
                detail="quota " * 1000,
            ),
        ),
        replace(
            VIEW,
            spec=SPEC.model_copy(
                update={
                    "ttl_hours": None,
                    "os_family": "windows",
                    "os_image": "windows-2022",
                    "packages": (),
                }
            ),
        ),
    ],
)
def test_every_card_shape_is_valid_and_within_limits(view: RequestView) -> None:
    validate(blocks.suggestion_card(view))
    validate(blocks.admin_card(view))
    assert len(blocks.card_text(view)) <= 300


def test_user_text_cannot_mention_or_link() -> None:
    card = blocks.suggestion_card(replace(VIEW, original_text="<!channel> hi <@U0BOSS>"))
    head = card[0]["text"]["text"]
    assert "<!channel>" not in head and "<@U0BOSS>" not in head
    assert "&lt;!channel&gt;" in head


def test_status_notes() -> None:
    view = running(VIEW)
    assert blocks.status_note(view, "queued") == "⏳ Queued — approved by <@U0MARIA>"
    assert (
        blocks.status_note(view, "provisioning", "us-central1-b")
        == "🔧 Provisioning in us-central1-b…"
    )
    assert (
        blocks.status_note(view, "progress", "Installing <docker>")
        == "📦 Installing &lt;docker&gt;…"
    )
    assert blocks.status_note(view, "nothing-happened") is None


def test_modal_and_home_are_valid_views() -> None:
    modal = blocks.request_modal(
        callback_id=blocks.NEW_REQUEST_VIEW, title="Ask for a VM", initial="x" * 5000
    )
    View(**modal).validate_json()
    views = [
        running(replace(VIEW, id=i, spec=SPEC.model_copy(update={"name": f"vm-{i}"})))
        for i in range(40)
    ]
    home = blocks.home_view(views, NOW)
    View(**home).validate_json()
    assert len(home["blocks"]) <= 100
    assert all(f"vm-{i}" in json.dumps(home) for i in range(40))
