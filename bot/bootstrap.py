"""The composition root: the one place where settings become real adapters.

Tests build their own pieces (a fake clock, the local backend with no delay, a WebClient
pointed at the emulator) and pass them in here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from celery import Celery
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from bot.advisor import Advisor
from bot.advisor.rules import RulesAdvisor
from bot.notifier import SlackNotifier
from bot.services import Services
from db.engine import make_engine, make_session_factory
from db.models import Role
from provisioning.backends.local import LocalBackend
from provisioning.catalog import default_catalog
from provisioning.clock import SystemClock
from provisioning.jobs import CeleryJobQueue, make_celery, register_tasks
from provisioning.policy import PolicyConfig
from provisioning.ports import Clock, CloudBackend
from provisioning.provisioner import Provisioner
from provisioning.service import Directory, RequestService
from provisioning.settings import ConfigError, Settings


def slack_client(settings: Settings) -> WebClient:
    return WebClient(
        token=settings.secret("slack_bot_token"),
        base_url=settings.slack_api_url or WebClient.BASE_URL,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
        ],
        timeout=15,
    )


def build_backend(settings: Settings) -> CloudBackend:
    if settings.vmbot_backend == "local":
        return LocalBackend(
            settings.vmbot_state_dir, step_seconds=settings.vmbot_local_step_seconds
        )
    raise ConfigError(
        f"VMBOT_BACKEND={settings.vmbot_backend} is not available in this version; "
        "use VMBOT_BACKEND=local."
    )


def build_advisor(settings: Settings) -> Advisor:
    return RulesAdvisor(
        default_catalog(),
        default_region=settings.vmbot_default_region,
        default_ttl_hours=settings.vmbot_default_ttl_hours,
    )


def policy_config(settings: Settings) -> PolicyConfig:
    return PolicyConfig(
        auto_approve_usd_per_hour=settings.vmbot_auto_approve_usd_per_hour,
        auto_approve_usd_total=settings.vmbot_auto_approve_usd_total,
    )


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    celery: Celery
    client: WebClient
    notifier: SlackNotifier
    requests: RequestService
    advisor: Advisor
    backend: CloudBackend
    clock: Clock
    _provisioner: Provisioner | None = field(default=None, repr=False)

    def services(self) -> Services:
        return Services(requests=self.requests, advisor=self.advisor, notifier=self.notifier)

    def provisioner(self) -> Provisioner:
        if self._provisioner is None:
            self._provisioner = Provisioner(
                self.sessions,
                backend=self.backend,
                notifier=self.notifier,
                clock=self.clock,
                requests=self.requests,
                jobs=CeleryJobQueue(self.celery),
            )
        return self._provisioner

    def check_database(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def check_broker(self) -> None:
        with self.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    def close(self) -> None:
        self.engine.dispose()


def build_runtime(
    settings: Settings,
    *,
    celery: Celery | None = None,
    client: WebClient | None = None,
    backend: CloudBackend | None = None,
    clock: Clock | None = None,
    advisor: Advisor | None = None,
) -> Runtime:
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    celery = celery or make_celery(settings)
    client = client or slack_client(settings)
    clock = clock or SystemClock()
    notifier = SlackNotifier(client, admin_channel=settings.vmbot_admin_channel)
    requests = RequestService(
        sessions,
        jobs=CeleryJobQueue(celery),
        notifier=notifier,
        clock=clock,
        policy=policy_config(settings),
        directory=Directory(
            admins=settings.admin_user_ids, default_role=Role(settings.vmbot_default_role)
        ),
        backend_name=settings.vmbot_backend,
        project=settings.gcp_project_id,
    )
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        celery=celery,
        client=client,
        notifier=notifier,
        requests=requests,
        advisor=advisor or build_advisor(settings),
        backend=backend or build_backend(settings),
        clock=clock,
    )


def build_worker(settings: Settings) -> Celery:
    """The Celery app with its tasks; the runtime is built lazily inside each worker child."""
    celery = make_celery(settings)
    lock = threading.Lock()
    holder: list[Runtime] = []

    def provisioner() -> Provisioner:
        with lock:
            if not holder:
                holder.append(build_runtime(settings, celery=celery))
            return holder[0].provisioner()

    register_tasks(celery, provisioner)
    return celery
