"""SQLAlchemy 2 models. Table and column names are read by outside tools: keep them."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Role(enum.StrEnum):
    VIEWER = "viewer"
    REQUESTER = "requester"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class RequestStatus(enum.StrEnum):
    SUGGESTED = "suggested"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class VmStatus(enum.StrEnum):
    QUEUED = "queued"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    FAILED = "failed"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as their lower-case values in a plain VARCHAR, so outside tools can read them
    # and adding a state needs no ALTER TYPE.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class TZDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    SQLite keeps no offset: values are stored as naive UTC and come back marked UTC, so code
    can always compare them with `utcnow()`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("slack_team_id", "slack_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slack_team_id: Mapped[str] = mapped_column(String(32))
    slack_user_id: Mapped[str] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), default=Role.REQUESTER)
    ssh_public_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)


class VmRequest(Base):
    __tablename__ = "vm_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    original_text: Mapped[str] = mapped_column(Text, default="")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(16), default="rules")
    status: Mapped[RequestStatus] = mapped_column(
        _enum(RequestStatus, "request_status"), default=RequestStatus.SUGGESTED, index=True
    )
    policy_decision: Mapped[str] = mapped_column(String(32), default="")
    policy_reason: Mapped[str] = mapped_column(Text, default="")
    policy_headroom: Mapped[str] = mapped_column(Text, default="")
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    admin_channel: Mapped[str | None] = mapped_column(String(32))
    admin_message_ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(TZDateTime())

    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    approver: Mapped[User | None] = relationship(foreign_keys=[approver_id])
    vms: Mapped[list[Vm]] = relationship(back_populates="request", order_by="Vm.id")


class Vm(Base):
    __tablename__ = "vms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("vm_requests.id"), unique=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    backend: Mapped[str] = mapped_column(String(16))
    project: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(40))
    zone: Mapped[str | None] = mapped_column(String(48))
    instance_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    status: Mapped[VmStatus] = mapped_column(
        _enum(VmStatus, "vm_status"), default=VmStatus.QUEUED, index=True
    )
    status_detail: Mapped[str] = mapped_column(Text, default="")
    state_key: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime | None] = mapped_column(TZDateTime(), index=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)
    running_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(TZDateTime())

    request: Mapped[VmRequest] = relationship(back_populates="vms")


class AuditLog(Base):
    """Append-only: rows are inserted by the transition functions and never updated."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
