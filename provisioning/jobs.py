"""The Celery app and the JobQueue that enqueues onto it.

Redis is the broker in production; without REDIS_URL the sandbox uses kombu's filesystem
transport, so the web process and the worker process still talk through a real broker and the
same task code runs in both setups.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from celery import Celery

from provisioning.errors import TransientError
from provisioning.provisioner import Provisioner
from provisioning.settings import Settings

PROVISION = "vmbot.provision_vm"
DESTROY = "vmbot.destroy_vm"
EXPIRE = "vmbot.expire_vms"
REQUEUE = "vmbot.requeue_stale"


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
    app.conf.update(
        task_ignore_result=True,
        task_acks_late=True,  # a job whose worker dies is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "expire-vms": {"task": EXPIRE, "schedule": 30.0},
            "requeue-stale": {"task": REQUEUE, "schedule": 60.0},
        },
    )
    return app


def register_tasks(app: Celery, provisioner: Callable[[], Provisioner]) -> None:
    """Bind the tasks to `app`. `provisioner` is called inside the worker, after fork."""
    retry = {
        "acks_late": True,
        "autoretry_for": (TransientError,),
        "retry_backoff": True,
        "retry_backoff_max": 60,
        "max_retries": 5,
    }

    @app.task(name=PROVISION, **retry)
    def provision_vm(vm_id: int) -> None:
        provisioner().provision(vm_id)

    @app.task(name=DESTROY, **retry)
    def destroy_vm(vm_id: int, reason: str = "") -> None:
        provisioner().destroy(vm_id, reason=reason)

    @app.task(name=EXPIRE)
    def expire_vms() -> None:
        provisioner().expire_due()

    @app.task(name=REQUEUE)
    def requeue_stale() -> None:
        provisioner().requeue_stale()


class CeleryJobQueue:
    def __init__(self, app: Celery) -> None:
        self._app = app

    def enqueue_provision(self, vm_id: int) -> None:
        self._app.send_task(PROVISION, args=[vm_id])

    def enqueue_destroy(self, vm_id: int) -> None:
        self._app.send_task(DESTROY, args=[vm_id])
