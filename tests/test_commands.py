"""The /vm command language, table-driven with exact results."""

from __future__ import annotations

import pytest

from bot import commands as c
from db.models import Role


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", c.OpenForm()),
        ("   ", c.OpenForm()),
        ("help", c.Help()),
        ("HELP", c.Help()),
        ("list", c.ListVms()),
        ("list mine", c.ListVms()),
        ("list all", c.ListVms(everyone=True)),
        ("status django-dev-3f2a", c.VmAction("status", "django-dev-3f2a")),
        ("destroy Django-Dev-3f2a", c.VmAction("destroy", "django-dev-3f2a")),
        ("stop box-1", c.VmAction("stop", "box-1")),
        ("start box-1", c.VmAction("start", "box-1")),
        ("extend box-1 2h", c.Extend("box-1", 2.0)),
        ("extend box-1 90m", c.Extend("box-1", 1.5)),
        ("extend box-1 1d", c.Extend("box-1", 24.0)),
        ("extend box-1 3 hours", c.Extend("box-1", 3.0)),
        ("extend box-1 +30 minutes", c.Extend("box-1", 0.5)),
        ("audit box-1", c.VmAction("audit", "box-1")),
        ("audit export", c.AuditExport()),
        ("key", c.RegisterKey()),
        ("admin roles", c.ListRoles()),
        ("admin role <@U0MARIA|maria> approver", c.SetRole("U0MARIA", Role.APPROVER)),
        ("admin role <@U0MARIA> ADMIN", c.SetRole("U0MARIA", Role.ADMIN)),
        (
            "I need a Django dev server with Postgres &amp; Redis for 2 hours",
            c.Ask("I need a Django dev server with Postgres & Redis for 2 hours"),
        ),
        ("django", c.Ask("django")),
        ("listing of 4 cpus please", c.Ask("listing of 4 cpus please")),
    ],
)
def test_parse(text: str, expected: c.Command) -> None:
    assert c.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lsit", "Did you mean `/vm list` (admins: `/vm list all`)? Or describe the VM you need."),
        ("destory box-1", "Did you mean `/vm destroy NAME`? Or describe the VM you need."),
        ("status", "Usage: `/vm status NAME`"),
        ("status a b", "Usage: `/vm status NAME`"),
        ("destroy Box_1!", "`Box_1!` isn't a VM name. `/vm list` shows yours."),
        ("extend box-1", "Usage: `/vm extend NAME 2h` (also 90m, 1d)"),
        ("extend box-1 soon", "I can't read `soon` as a duration; try 2h, 90m or 1d."),
        ("extend box-1 0h", "Extend by a positive amount of time, e.g. 2h."),
        ("list everything", "Usage: `/vm list` (admins: `/vm list all`)"),
        (
            "key ssh-ed25519 AAAA",
            "Usage: `/vm key` (opens a form for your SSH public key); "
            "paste the key into the form, not here.",
        ),
        (
            "admin role maria approver",
            "Name the person with an @-mention: `/vm admin role @maria approver`.",
        ),
        ("admin role <@U1> boss", "`boss` isn't a role; use viewer, requester, approver or admin."),
        (
            "admin",
            "Usage: `/vm admin role @user ROLE` (ROLE: viewer, requester, approver, admin) "
            "or `/vm admin roles`",
        ),
    ],
)
def test_usage_errors(text: str, message: str) -> None:
    with pytest.raises(c.UsageError) as caught:
        c.parse(text)
    assert str(caught.value) == message
