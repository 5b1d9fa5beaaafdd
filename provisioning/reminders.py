"""Telling owners before their VM's time is up, once per expiry time.

A reminder is recorded in the audit log with the expiry it was about, so extending a VM makes
it due for a new reminder, and a beat that runs twice never reminds twice.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import AuditLog, Vm, VmStatus
from provisioning.ports import Clock, Notifier
from provisioning.service import RequestService

REMINDED = "vm.reminded"


class Reminders:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        notifier: Notifier,
        clock: Clock,
        requests: RequestService,
        before: timedelta = timedelta(minutes=30),
    ) -> None:
        self._sessions = session_factory
        self._notifier = notifier
        self._clock = clock
        self._requests = requests
        self._before = before

    def send_due(self) -> list[int]:
        """Remind the owner of every running VM that expires within the window; returns ids."""
        now = self._clock.now()
        sent: list[int] = []
        with self._sessions.begin() as session:
            candidates = session.scalars(
                select(Vm).where(
                    Vm.status == VmStatus.RUNNING,
                    Vm.expires_at.is_not(None),
                    Vm.expires_at > now,
                    Vm.expires_at <= now + self._before,
                )
            ).all()
            if not candidates:
                return sent
            done = {
                (row.target, (row.details or {}).get("expires_at"))
                for row in session.scalars(
                    select(AuditLog).where(
                        AuditLog.action == REMINDED,
                        AuditLog.target.in_([f"vm:{vm.id}" for vm in candidates]),
                    )
                )
            }
            for vm in candidates:
                assert vm.expires_at is not None
                key = (f"vm:{vm.id}", vm.expires_at.isoformat())
                if key in done:
                    continue
                session.add(
                    AuditLog(
                        actor="worker",
                        action=REMINDED,
                        target=key[0],
                        details={"name": vm.name, "expires_at": key[1]},
                    )
                )
                sent.append(vm.request_id)
        # Told after the commit: a crash in between loses a reminder, never doubles one.
        for request_id in sent:
            self._notifier.request_changed(self._requests.get(request_id), "expiring")
        return sent
