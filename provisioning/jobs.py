"""The Celery app, its tasks, and the JobQueue that enqueues onto it.

Redis is the broker in production; without REDIS_URL the sandbox uses kombu's filesystem
transport, so the web process and the worker process still talk through a real broker and the
same task code runs in both setups.

Tasks are thin: they take a VM id and call the Provisioner, which holds the VM's lock, reloads
the row and returns early when the work is done already. Messages are acknowledged only after
the task ends (`acks_late`), so a job whose worker dies is delivered again; `reconcile` picks up
anything a dead worker left half-done sooner than that.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from provisioning.errors import TransientError
from provisioning.locks import LockHeld
from provisioning.provisioner import Provisioner
from provisioning.reminders import Reminders
from provisioning.service import RequestService
from provisioning.settings import Settings

log = logging.getLogger(__name__)

PROVISION = "vmbot.provision_vm"
DESTROY = "vmbot.destroy_vm"
STOP = "vmbot.stop_vm"
START = "vmbot.start_vm"
EXPIRE = "vmbot.expire_vms"
REQUEUE = "vmbot.requeue_stale"
RECONCILE = "vmbot.reconcile"
REMIND = "vmbot.remind_expiring"
EXPIRE_PENDING = "vmbot.expire_pending"


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 6
    backoff_base: float = 2.0
    backoff_max: float = 60.0

    def countdown(self, retries: int) -> float:
        """Exponential backoff with jitter, so retries of many jobs do not march in step."""
        ceiling = min(self.backoff_max, self.backoff_base * 2**retries)
        return ceiling * random.uniform(0.5, 1.0)


def make_celery(settings: Settings) -> Celery:
    app = Celery("vmbot", set_as_current=False)
    if settings.redis_url:
        app.conf.broker_url = settings.redis_url
    else:
        queue = Path(settings.vmbot_state_dir, "broker").resolve()
        queue.mkdir(parents=True, exist_ok=True)
        app.conf.broker_url = "filesystem://"
        app.conf.broker_transport_options = {
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "store_processed": False,
            "control_folder": str(queue / "control"),
        }
    hard = settings.vmbot_job_time_limit_seconds
    app.conf.update(
        task_ignore_result=True,
        task_acks_late=True,  # a job whose worker dies is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # Past the soft limit the task gets SoftTimeLimitExceeded and lets go of its lock;
        # the hard limit kills a task that ignores it.
        task_soft_time_limit=hard,
        task_time_limit=hard + 60,
        beat_schedule={
            "expire-vms": {"task": EXPIRE, "schedule": 30.0},
            "requeue-stale": {"task": REQUEUE, "schedule": 60.0},
            "reconcile": {"task": RECONCILE, "schedule": settings.vmbot_reconcile_seconds},
            "remind-expiring": {"task": REMIND, "schedule": 60.0},
            "expire-pending": {"task": EXPIRE_PENDING, "schedule": 300.0},
        },
        # One queue name per installation, so two installations (or two test runs) sharing
        # a Redis never take each other's jobs.
        task_default_queue=settings.vmbot_queue,
    )
    return app


def register_lifecycle_tasks(
    app: Celery, reminders: Callable[[], Reminders], requests: Callable[[], RequestService]
) -> None:
    """The beats that talk to people: expiry reminders, and pending requests timing out."""

    @app.task(name=REMIND)
    def remind_expiring() -> None:
        reminders().send_due()

    @app.task(name=EXPIRE_PENDING)
    def expire_pending() -> None:
        requests().expire_pending()


def register_tasks(
    app: Celery,
    provisioner: Callable[[], Provisioner],
    policy: RetryPolicy = RetryPolicy(),
) -> None:
    """Bind the tasks to `app`. `provisioner` is called inside the worker, after fork."""

    def run(task: Task, vm_id: int, what: str, work: Callable[[Provisioner], None]) -> None:
        try:
            work(provisioner())
        except LockHeld as exc:
            if task.request.retries >= policy.max_retries:
                # Someone has held the VM all along: they are doing the work, not us.
                log.info("%s of VM %s: still busy after retries, leaving it (%s)", what, vm_id, exc)
                return
            raise task.retry(exc=exc, countdown=policy.countdown(task.request.retries)) from exc
        except TransientError as exc:
            if task.request.retries >= policy.max_retries:
                provisioner().fail(vm_id, f"{what} kept failing: {exc}")
                return
            log.warning("%s of VM %s will be retried: %s", what, vm_id, exc)
            raise task.retry(exc=exc, countdown=policy.countdown(task.request.retries)) from exc
        except SoftTimeLimitExceeded:
            # The VM stays in its transitional state; reconcile resumes or fails it later.
            log.error("%s of VM %s ran out of time", what, vm_id)
            raise

    common: dict[str, Any] = {"bind": True, "acks_late": True, "max_retries": policy.max_retries}

    @app.task(name=PROVISION, **common)
    def provision_vm(self: Task, vm_id: int) -> None:
        run(self, vm_id, "Provisioning", lambda p: p.provision(vm_id))

    @app.task(name=DESTROY, **common)
    def destroy_vm(self: Task, vm_id: int, reason: str = "") -> None:
        run(self, vm_id, "Destroying", lambda p: p.destroy(vm_id, reason=reason))

    @app.task(name=STOP, **common)
    def stop_vm(self: Task, vm_id: int) -> None:
        run(self, vm_id, "Stopping", lambda p: p.stop(vm_id))

    @app.task(name=START, **common)
    def start_vm(self: Task, vm_id: int) -> None:
        run(self, vm_id, "Starting", lambda p: p.start(vm_id))

    @app.task(name=EXPIRE)
    def expire_vms() -> None:
        provisioner().expire_due()

    @app.task(name=REQUEUE)
    def requeue_stale() -> None:
        provisioner().requeue_stale()

    @app.task(name=RECONCILE)
    def reconcile() -> None:
        report = provisioner().reconcile()
        if any(vars(report).values()):
            log.info("reconcile: %s", report)


class CeleryJobQueue:
    def __init__(self, app: Celery) -> None:
        self._app = app

    def enqueue_provision(self, vm_id: int) -> None:
        self._app.send_task(PROVISION, args=[vm_id])

    def enqueue_destroy(self, vm_id: int) -> None:
        self._app.send_task(DESTROY, args=[vm_id])

    def enqueue_stop(self, vm_id: int) -> None:
        self._app.send_task(STOP, args=[vm_id])

    def enqueue_start(self, vm_id: int) -> None:
        self._app.send_task(START, args=[vm_id])
