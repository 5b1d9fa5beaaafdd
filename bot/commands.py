"""The `/vm` command language: a pure parser from text to a command object.

Anything that is not a known subcommand is a request in plain words. A known subcommand with
bad arguments, or a near-miss of one ("lsit"), gets an answer that shows the right form.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass

from db.models import Role


class UsageError(Exception):
    """The command was recognised but malformed; the message shows the right form."""


@dataclass(frozen=True)
class OpenForm:
    pass


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class ListVms:
    everyone: bool = False


@dataclass(frozen=True)
class VmAction:
    verb: str  # status | destroy | stop | start | audit
    name: str


@dataclass(frozen=True)
class Extend:
    name: str
    hours: float


@dataclass(frozen=True)
class SetRole:
    user_id: str
    role: Role


@dataclass(frozen=True)
class ListRoles:
    pass


@dataclass(frozen=True)
class RegisterKey:
    pass


@dataclass(frozen=True)
class AuditExport:
    pass


@dataclass(frozen=True)
class Ask:
    text: str


Command = (
    OpenForm
    | Help
    | ListVms
    | VmAction
    | Extend
    | SetRole
    | ListRoles
    | RegisterKey
    | AuditExport
    | Ask
)

USAGE = {
    "help": "`/vm help`",
    "list": "`/vm list` (admins: `/vm list all`)",
    "status": "`/vm status NAME`",
    "destroy": "`/vm destroy NAME`",
    "extend": "`/vm extend NAME 2h` (also 90m, 1d)",
    "stop": "`/vm stop NAME`",
    "start": "`/vm start NAME`",
    "audit": "`/vm audit NAME`, or `/vm audit export` for a CSV (admins)",
    "key": "`/vm key` (opens a form for your SSH public key)",
    "admin": "`/vm admin role @user ROLE` (ROLE: viewer, requester, approver, admin) "
    "or `/vm admin roles`",
}
SUBCOMMANDS = tuple(USAGE)
VM_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DURATION = re.compile(
    r"^\+?(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)$"
)
UNIT_HOURS = {"m": 1 / 60, "h": 1, "d": 24}
MENTION = re.compile(r"^<@(?P<id>[UW][A-Z0-9]+)(?:\|[^>]*)?>$")


def parse_duration(text: str) -> float:
    match = DURATION.match(text.strip().lower())
    if not match:
        raise UsageError(f"I can't read `{text}` as a duration; try 2h, 90m or 1d.")
    hours = float(match["n"]) * UNIT_HOURS[match["unit"][0]]
    if hours <= 0:
        raise UsageError("Extend by a positive amount of time, e.g. 2h.")
    return round(hours, 4)


def _name(verb: str, args: list[str]) -> str:
    if len(args) != 1:
        raise UsageError(f"Usage: {USAGE[verb]}")
    name = args[0].lower()
    if not VM_NAME.match(name):
        raise UsageError(f"`{args[0]}` isn't a VM name. `/vm list` shows yours.")
    return name


def parse(raw: str) -> Command:
    # Slack escapes &, < and > in slash command text; mentions arrive as <@U123|name>.
    text = " ".join(raw.split())
    words = text.split(" ") if text else []
    if not words:
        return OpenForm()
    verb, args = words[0].lower(), words[1:]
    if verb not in SUBCOMMANDS:
        near = difflib.get_close_matches(verb, SUBCOMMANDS, n=1, cutoff=0.75)
        if near and len(words) <= 3:
            raise UsageError(f"Did you mean {USAGE[near[0]]}? Or describe the VM you need.")
        return Ask(html.unescape(text))
    if verb == "help":
        return Help()
    if verb == "list":
        if args in ([], ["mine"]):
            return ListVms()
        if args == ["all"]:
            return ListVms(everyone=True)
        raise UsageError(f"Usage: {USAGE['list']}")
    if verb in ("status", "destroy", "stop", "start"):
        return VmAction(verb, _name(verb, args))
    if verb == "extend":
        if len(args) < 2:
            raise UsageError(f"Usage: {USAGE['extend']}")
        return Extend(_name("extend", args[:1]), parse_duration("".join(args[1:])))
    if verb == "audit":
        if args == ["export"]:
            return AuditExport()
        return VmAction("audit", _name("audit", args))
    if verb == "key":
        if args:
            raise UsageError(f"Usage: {USAGE['key']}; paste the key into the form, not here.")
        return RegisterKey()
    # admin
    if args == ["roles"]:
        return ListRoles()
    if len(args) == 3 and args[0] == "role":
        mention = MENTION.match(args[1])
        if not mention:
            raise UsageError("Name the person with an @-mention: `/vm admin role @maria approver`.")
        try:
            role = Role(args[2].lower())
        except ValueError:
            raise UsageError(
                f"`{args[2]}` isn't a role; use viewer, requester, approver or admin."
            ) from None
        return SetRole(mention["id"], role)
    raise UsageError(f"Usage: {USAGE['admin']}")
