"""The composition root: the one place where settings become real adapters.

Tests build their own pieces (a fake clock, the local backend with no delay, a WebClient
pointed at the emulator) and pass them in here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

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
from bot.home import publish_home
from bot.notifier import SlackNotifier
from bot.profiles import SlackProfiles
from bot.services import Services
from db.engine import make_engine, make_session_factory
from db.models import Role
from provisioning.backends.local import LocalBackend
from provisioning.backends.terraform import DEFAULT_MODULE_DIR, TerraformBackend
from provisioning.catalog import default_catalog
from provisioning.clock import SystemClock
from provisioning.jobs import CeleryJobQueue, make_celery, register_lifecycle_tasks, register_tasks
from provisioning.lifecycle import VmService
from provisioning.locks import FileLocks, Locks, RedisLocks
from provisioning.people import Actor, Directory, PeopleService
from provisioning.policy import PolicyConfig, load_policy
from provisioning.ports import Clock, CloudBackend
from provisioning.provisioner import Provisioner
from provisioning.regions import CpuQuota, RegionChooser
from provisioning.reminders import Reminders
from provisioning.service import RequestService
from provisioning.settings import ConfigError, Settings
from provisioning.terraform_runner import RunnerConfig, TerraformRunner


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
            settings.vmbot_state_dir,
            step_seconds=settings.vmbot_local_step_seconds,
            fail_machine_types=settings.local_fail_machine_types,
        )
    if settings.vmbot_backend == "gce":
        return build_gce_backend(settings)
    if settings.vmbot_backend == "terraform":
        return build_terraform_backend(settings)
    raise ConfigError(
        f"VMBOT_BACKEND={settings.vmbot_backend} is not available in this version; "
        "use VMBOT_BACKEND=local."
    )


def build_gce_backend(settings: Settings) -> CloudBackend:
    # Imported here: google-cloud-compute takes seconds to load, and only this backend needs it.
    from provisioning.backends.gce import GceBackend

    if not settings.gcp_project_id:
        raise ConfigError("VMBOT_BACKEND=gce needs GCP_PROJECT_ID: the project to make VMs in.")
    return GceBackend(
        settings.gcp_project_id,
        endpoint=settings.gce_api_endpoint,
        image_projects={image.family: image.project for image in default_catalog().images},
    )


def build_terraform_backend(settings: Settings) -> TerraformBackend:
    if not settings.gcp_project_id:
        raise ConfigError(
            "VMBOT_BACKEND=terraform needs GCP_PROJECT_ID: the project to make VMs in."
        )
    root = Path(settings.vmbot_terraform_dir or Path(settings.vmbot_state_dir, "terraform"))
    runner = TerraformRunner(
        RunnerConfig(
            terraform_bin=settings.vmbot_terraform_bin,
            cli_config_file=settings.vmbot_terraform_cli_config or None,
            plugin_cache_dir=str(root / ".plugin-cache"),
            timeout=settings.vmbot_terraform_timeout_seconds,
        )
    )
    return TerraformBackend(
        runner,
        root_dir=root,
        project=settings.gcp_project_id,
        module_dir=settings.vmbot_terraform_module_dir or DEFAULT_MODULE_DIR,
        state_bucket=settings.vmbot_tf_state_bucket or None,
        state_prefix=settings.vmbot_tf_state_prefix,
        image_projects={image.family: image.project for image in default_catalog().images},
    )


def build_locks(settings: Settings) -> Locks:
    if settings.redis_url:
        return RedisLocks(settings.redis_url, ttl=settings.vmbot_lock_ttl_seconds)
    return FileLocks(Path(settings.vmbot_state_dir, "locks"))


def build_region_chooser(settings: Settings, backend: CloudBackend) -> RegionChooser:
    return RegionChooser(
        catalog=default_catalog(),
        priority=settings.region_priority,
        fallback=settings.vmbot_fallback_region,
        default_cap=settings.vmbot_region_vcpu_cap,
        caps=settings.region_caps,
        # Real CPUS quota where the backend can read it (gce); elsewhere only our own caps.
        quota=backend if isinstance(backend, CpuQuota) else None,
    )


def build_advisor(settings: Settings) -> Advisor:
    """The rules engine, with an LLM in front when OPENAI_API_KEY is set (empty means unset)."""
    rules = RulesAdvisor(
        default_catalog(),
        default_region=settings.vmbot_default_region,
        default_ttl_hours=settings.vmbot_default_ttl_hours,
    )
    if not settings.has_secret("openai_api_key"):
        return rules
    import openai

    from bot.advisor.llm import LlmAdvisor

    client = openai.OpenAI(
        api_key=settings.secret("openai_api_key"),
        base_url=settings.openai_base_url or None,
        max_retries=0,  # a retry would outlast the user's patience; the rules engine answers
    )
    return LlmAdvisor(client, settings.openai_model, rules)


def policy_config(settings: Settings) -> PolicyConfig:
    return load_policy(settings.vmbot_policy_file or None)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    celery: Celery
    client: WebClient
    notifier: SlackNotifier
    requests: RequestService
    vms: VmService
    people: PeopleService
    advisor: Advisor
    backend: CloudBackend
    clock: Clock
    policy: PolicyConfig
    _provisioner: Provisioner | None = field(default=None, repr=False)

    def services(self) -> Services:
        return Services(
            requests=self.requests,
            vms=self.vms,
            people=self.people,
            advisor=self.advisor,
            notifier=self.notifier,
            slow_advisor=not isinstance(self.advisor, RulesAdvisor),  # i.e. an LLM
        )

    def provisioner(self) -> Provisioner:
        if self._provisioner is None:
            self._provisioner = Provisioner(
                self.sessions,
                backend=self.backend,
                notifier=self.notifier,
                clock=self.clock,
                requests=self.requests,
                jobs=CeleryJobQueue(self.celery),
                locks=build_locks(self.settings),
                regions=build_region_chooser(self.settings, self.backend),
                stuck_after=timedelta(seconds=self.settings.vmbot_stuck_after_seconds),
                lifetime_limit=lambda role: self.policy.limits[role].max_ttl_hours,
                expiry_action=self.policy.vm_expiry_action,
            )
        return self._provisioner

    def reminders(self) -> Reminders:
        return Reminders(
            self.sessions,
            notifier=self.notifier,
            clock=self.clock,
            requests=self.requests,
            before=timedelta(minutes=self.settings.vmbot_remind_minutes),
        )

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
    notifier = SlackNotifier(
        client,
        admin_channel=settings.vmbot_admin_channel,
        min_update_interval=settings.vmbot_slack_update_interval,
    )
    directory = Directory(
        admins=settings.admin_user_ids, default_role=Role(settings.vmbot_default_role)
    )
    policy = policy_config(settings)
    jobs = CeleryJobQueue(celery)
    requests = RequestService(
        sessions,
        jobs=jobs,
        notifier=notifier,
        clock=clock,
        policy=policy,
        directory=directory,
        backend_name=settings.vmbot_backend,
        project=settings.gcp_project_id,
    )
    vms = VmService(
        sessions,
        jobs=jobs,
        notifier=notifier,
        clock=clock,
        directory=directory,
        policy=lambda: policy,
    )
    people = PeopleService(
        sessions, directory=directory, clock=clock, profiles=SlackProfiles(client)
    )

    notifier.refresh_home = lambda view: publish_home(
        client, requests, vms, Actor(view.requester_team, view.requester)
    )
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        celery=celery,
        client=client,
        notifier=notifier,
        requests=requests,
        vms=vms,
        people=people,
        advisor=advisor or build_advisor(settings),
        backend=backend or build_backend(settings),
        clock=clock,
        policy=policy,
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

    def runtime() -> Runtime:
        provisioner()
        return holder[0]

    register_tasks(celery, provisioner)
    register_lifecycle_tasks(celery, lambda: runtime().reminders(), lambda: runtime().requests)
    return celery
