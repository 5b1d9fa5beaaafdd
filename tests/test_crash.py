"""Jobs in real `vmbot worker` processes on Redis and PostgreSQL: a worker SIGKILLed in the
middle of provisioning, and the stop, start and destroy tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.slack_emulator import SlackEmulator
from db.engine import make_engine, make_session_factory
from db.models import AuditLog, Role, Vm, VmStatus
from provisioning.backends.local import LocalBackend
from provisioning.jobs import CeleryJobQueue, make_celery
from provisioning.people import Actor, Directory
from provisioning.policy import PolicyConfig
from provisioning.service import RequestService
from provisioning.settings import Settings
from tests.conftest import ROOT, Stack, unique
from tests.fakes.ports import FakeClock, FakeNotifier
from tests.provisioning_world import spec

pytestmark = pytest.mark.integration


def wait_until(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return found


def start_worker(env: dict[str, str], log: Path, *, beat: bool) -> subprocess.Popen:
    argv = [sys.executable, "-m", "bot.cli", "worker", "--pool", "threads", "--concurrency", "2"]
    if not beat:
        argv.insert(4, "--no-beat")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*argv, "-n", f"crash-{unique('').lower()}@%h"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # so the kill reaches every process of this worker
        )
    wait_until(lambda: b"ready." in log.read_bytes() or proc.poll() is not None, 30, "worker")
    assert proc.poll() is None, log.read_text()[-3000:]
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def crash_env(
    scratch_pg_url: str, scratch_redis_url: str, emulator: SlackEmulator, tmp_path: Path
) -> dict[str, str]:
    """A database and a queue of the test's own, a slow local cloud, and a fast reconcile."""
    from tests.conftest import ADMIN_CHANNEL, BOT_TOKEN

    return {
        "DATABASE_URL": scratch_pg_url,
        "REDIS_URL": scratch_redis_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": "unused",
        "SLACK_API_URL": emulator.base_url,
        "SLACK_APP_TOKEN": "",
        "VMBOT_STATE_DIR": str(tmp_path / "state"),
        "VMBOT_BACKEND": "local",
        "VMBOT_LOCAL_STEP_SECONDS": "2",
        "VMBOT_LOCK_TTL_SECONDS": "1.5",
        "VMBOT_STUCK_AFTER_SECONDS": "1",
        "VMBOT_RECONCILE_SECONDS": "1",
        "VMBOT_ADMIN_CHANNEL": ADMIN_CHANNEL,
        "OPENAI_API_KEY": "",
    }


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        stop_worker(proc)


def test_a_worker_killed_mid_provisioning_leaves_one_running_vm(
    crash_env: dict[str, str], workers: list[subprocess.Popen], tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in crash_env.items()})
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    requests = RequestService(
        sessions,
        jobs=CeleryJobQueue(make_celery(settings)),
        notifier=FakeNotifier(),
        clock=FakeClock(),
        policy=PolicyConfig(),
        directory=Directory(admins=frozenset(), default_role=Role.REQUESTER),
        backend_name="local",
    )
    cloud = LocalBackend(settings.vmbot_state_dir, step_seconds=0)
    log = tmp_path / "worker.log"
    workers.append(start_worker(crash_env, log, beat=False))

    actor = Actor(team_id="T1", user_id=unique("U"))
    the_spec = spec()
    view = requests.create_request(actor, "a dev box", the_spec)
    requests.approve(view.id, actor)

    def vm() -> Vm:
        with sessions() as session:
            return session.scalars(select(Vm).where(Vm.name == the_spec.name)).one()

    # Kill the worker while the cloud is still making the instance.
    wait_until(
        lambda: vm().status is VmStatus.PROVISIONING and cloud.record(the_spec.name),
        30,
        "provisioning to start",
    )
    record = cloud.record(the_spec.name)
    assert record is not None and record["status"] == "PROVISIONING"
    os.killpg(workers[0].pid, signal.SIGKILL)
    workers[0].wait()
    assert vm().status is VmStatus.PROVISIONING

    # A new worker (with beat, so reconcile runs) finishes the job.
    workers.append(start_worker(crash_env, log, beat=True))
    wait_until(lambda: vm().status is VmStatus.RUNNING, 45, "the VM to run:\n" + str(log))
    time.sleep(1.5)  # give a duplicate job, if any, time to show itself

    final = vm()
    assert final.status is VmStatus.RUNNING and final.ip and final.ip.startswith("203.0.113.")
    assert cloud.inserts() == [the_spec.name], "exactly one instance was ever made"
    assert [i.name for i in cloud.list_managed()] == [the_spec.name]
    with sessions() as session:
        actions = list(
            session.scalars(
                select(AuditLog.action)
                .where(AuditLog.target == f"vm:{final.id}")
                .order_by(AuditLog.id)
            )
        )
        orphans = session.scalar(
            select(func.count(AuditLog.id)).where(AuditLog.action.like("orphan.%"))
        )
    assert actions.count("vm.running") == 1
    assert actions[0] == "vm.provisioning" and "vm.resume" in actions
    assert actions[-1] == "vm.running"
    assert orphans == 0
    engine.dispose()


def test_stop_start_and_destroy_tasks_in_the_worker(stack: Stack, worker) -> None:
    runtime = stack.runtime
    actor = Actor(team_id="T0TEST", user_id=unique("U"))
    the_spec = spec()
    view = runtime.requests.create_request(actor, "a dev box", the_spec)
    runtime.requests.approve(view.id, actor)
    jobs = CeleryJobQueue(runtime.celery)

    def status() -> VmStatus:
        with runtime.sessions() as session:
            return session.scalars(select(Vm.status).where(Vm.name == the_spec.name)).one()

    def vm_id() -> int:
        with runtime.sessions() as session:
            return session.scalars(select(Vm.id).where(Vm.name == the_spec.name)).one()

    wait_until(lambda: status() is VmStatus.RUNNING, 30, "running")
    jobs.enqueue_stop(vm_id())
    jobs.enqueue_stop(vm_id())  # a duplicate is harmless
    wait_until(lambda: status() is VmStatus.STOPPED, 30, "stopped")
    jobs.enqueue_start(vm_id())
    wait_until(lambda: status() is VmStatus.RUNNING, 30, "running again")
    jobs.enqueue_destroy(vm_id())
    wait_until(lambda: status() is VmStatus.DESTROYED, 30, "destroyed")
    with runtime.sessions() as session:
        actions = list(
            session.scalars(
                select(AuditLog.action)
                .where(AuditLog.target == f"vm:{vm_id()}")
                .order_by(AuditLog.id)
            )
        )
    assert actions == [
        "vm.provisioning",
        "vm.running",
        "vm.stopping",
        "vm.stopped",
        "vm.provisioning",
        "vm.running",
        "vm.destroying",
        "vm.destroyed",
    ]
