"""People: Slack identities, their roles and SSH keys. Every change is audited in its
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from db.models import AuditLog, Role, User
from provisioning.errors import NotAllowed
from provisioning.ports import Clock


@dataclass(frozen=True)
class Actor:
    """Who is acting, as Slack's signed payload says; never taken from a button value."""

    team_id: str
    user_id: str

    @property
    def audit_name(self) -> str:
        return f"slack:{self.team_id}/{self.user_id}"


@dataclass(frozen=True)
class Directory:
    """How roles are assigned to people the bot has not seen before."""

    admins: frozenset[str]
    default_role: Role


@dataclass(frozen=True)
class Person:
    user_id: str
    role: Role
    email: str | None
    display_name: str | None
    has_key: bool


@dataclass(frozen=True)
class Profile:
    email: str | None
    display_name: str | None


class ProfileLookup(Protocol):
    def profile(self, user_id: str) -> Profile | None:
        """The person's email and display name from the chat platform, or None if unknown.

        Never raises: a lookup that fails returns None and is tried again next time.
        """
        ...


PROFILE_TTL = timedelta(days=1)


def ensure_user(session: Session, actor: Actor, directory: Directory) -> User:
    """The user row for this Slack identity, created on first sight (safe under races)."""
    role = Role.ADMIN if actor.user_id in directory.admins else directory.default_role
    values = {"slack_team_id": actor.team_id, "slack_user_id": actor.user_id, "role": role}
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(User)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["slack_team_id", "slack_user_id"])
    )
    user = session.scalars(
        select(User).where(User.slack_team_id == actor.team_id, User.slack_user_id == actor.user_id)
    ).one()
    if actor.user_id in directory.admins and user.role is not Role.ADMIN:
        user.role = Role.ADMIN  # bootstrap admins stay admins whatever the table says
    return user


class PeopleService:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        directory: Directory,
        clock: Clock,
        profiles: ProfileLookup | None = None,
    ) -> None:
        self._sessions = session_factory
        self._directory = directory
        self._clock = clock
        self._profiles = profiles

    def person(self, actor: Actor) -> Person:
        """The actor's row (created on first sight), with email and name refreshed daily."""
        with self._sessions.begin() as session:
            user = ensure_user(session, actor, self._directory)
            self._refresh_profile(user, self._clock.now())
            return _person(user)

    def _refresh_profile(self, user: User, now: datetime) -> None:
        if self._profiles is None:
            return
        fresh = user.display_name is not None and user.updated_at > now - PROFILE_TTL
        if fresh:
            return
        profile = self._profiles.profile(user.slack_user_id)
        if profile is not None:
            user.email, user.display_name = profile.email, profile.display_name
            user.updated_at = now

    def set_role(self, actor: Actor, target_user_id: str, role: Role) -> Person:
        with self._sessions.begin() as session:
            me = ensure_user(session, actor, self._directory)
            if me.role is not Role.ADMIN:
                raise NotAllowed("Only admins can change roles.")
            target = ensure_user(session, Actor(actor.team_id, target_user_id), self._directory)
            if target_user_id in self._directory.admins and role is not Role.ADMIN:
                raise NotAllowed(
                    f"<@{target_user_id}> is an admin through VMBOT_ADMINS; change that setting "
                    "to take the role away."
                )
            before = target.role
            target.role = role
            session.add(
                AuditLog(
                    actor=actor.audit_name,
                    action="user.role_changed",
                    target=f"user:{target_user_id}",
                    details={"from": before.value, "to": role.value},
                )
            )
            return _person(target)

    def list_roles(self, actor: Actor) -> list[Person]:
        with self._sessions.begin() as session:
            me = ensure_user(session, actor, self._directory)
            if me.role.rank < Role.APPROVER.rank:
                raise NotAllowed("Only approvers and admins can list roles.")
            users = session.scalars(
                select(User)
                .where(User.slack_team_id == actor.team_id)
                .order_by(User.role.desc(), User.slack_user_id)
            ).all()
            return [_person(u) for u in users]

    def set_key(self, actor: Actor, public_key_line: str, fingerprint: str) -> Person:
        """Store the actor's SSH public key (already validated). No private key ever exists here."""
        with self._sessions.begin() as session:
            me = ensure_user(session, actor, self._directory)
            if me.role is Role.VIEWER:
                raise NotAllowed("Viewers cannot register SSH keys; ask an admin for a role.")
            me.ssh_public_key = public_key_line
            session.add(
                AuditLog(
                    actor=actor.audit_name,
                    action="user.key_registered",
                    target=f"user:{actor.user_id}",
                    details={"fingerprint": fingerprint},
                )
            )
            return _person(me)


def _person(user: User) -> Person:
    return Person(
        user_id=user.slack_user_id,
        role=user.role,
        email=user.email,
        display_name=user.display_name,
        has_key=bool(user.ssh_public_key),
    )
