"""All configuration, read from the environment (or a `.env` file).

Secrets are `SecretStr` without defaults, so they are never printed by accident and never
silently fall back to a shared value. Settings are passed in; nothing imports a global instance.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["viewer", "requester", "approver", "admin"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None  # set it to use Socket Mode
    slack_api_url: str | None = None  # Web API base URL override (emulator, tests)
    vmbot_slack_update_interval: float = Field(default=1.0, ge=0, le=60)
    port: int = Field(default=3000, ge=1, le=65535)

    # Storage and jobs
    database_url: str = "sqlite:///.vmbot/vmbot.sqlite"
    redis_url: str | None = None  # None: the embedded broker (sandbox only)
    vmbot_state_dir: str = ".vmbot"
    vmbot_queue: str = Field(default="vmbot", pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    # AI
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"

    # Cloud
    vmbot_backend: Literal["local", "gce", "terraform"] = "local"
    gcp_project_id: str | None = None
    gce_api_endpoint: str | None = None
    vmbot_default_region: str = "us-central1"
    vmbot_local_step_seconds: float = Field(default=1.0, ge=0, le=60)
    # Comma-separated machine types the simulated cloud refuses, to rehearse failures.
    vmbot_local_fail_machine_types: str = ""

    # The terraform backend (VMBOT_BACKEND=terraform): one working directory and state per VM.
    vmbot_terraform_dir: str | None = None  # default: VMBOT_STATE_DIR/terraform
    vmbot_terraform_bin: str = "terraform"
    vmbot_terraform_module_dir: str | None = None  # default: the repository's terraform/
    vmbot_terraform_cli_config: str | None = None  # becomes TF_CLI_CONFIG_FILE
    vmbot_terraform_timeout_seconds: float = Field(default=1200.0, gt=0)
    vmbot_tf_state_bucket: str | None = None  # GCS bucket for state; empty: local state
    vmbot_tf_state_prefix: str = "vmbot"

    # Region selection: the first region in this order where the VM fits under its vCPU cap
    # wins (the request's own region and its geography first); the fallback takes the rest.
    vmbot_region_priority: str = "us-east1,us-central1,us-west1,us-east4,europe-west1,europe-west4"
    vmbot_region_vcpu_cap: int = Field(default=8, ge=0)
    vmbot_region_caps: str = ""  # per-region overrides, e.g. "us-east1=16,europe-west1=4"
    vmbot_fallback_region: str = "northamerica-northeast1"

    # Jobs: a per-VM lock, time limits, and the reconcile beat task.
    vmbot_lock_ttl_seconds: float = Field(default=60.0, gt=0)
    vmbot_job_time_limit_seconds: float = Field(default=1800.0, gt=0)
    vmbot_stuck_after_seconds: float = Field(default=900.0, gt=0)
    vmbot_reconcile_seconds: float = Field(default=300.0, gt=0)

    # People and policy
    vmbot_admin_channel: str | None = None
    vmbot_admins: str = ""  # comma-separated Slack user ids
    vmbot_default_role: Role = "requester"
    vmbot_policy_file: str | None = None  # None: the shipped default_policy.yaml
    vmbot_default_ttl_hours: float = Field(default=4.0, gt=0)
    vmbot_remind_minutes: float = Field(default=30.0, gt=0, le=24 * 60)

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str | None) -> str | None:
        # slack_sdk appends the method name to base_url verbatim.
        if value and not value.endswith("/"):
            return value + "/"
        return value

    def has_secret(self, name: str) -> bool:
        value = getattr(self, name)
        return value is not None and bool(value.get_secret_value())

    @property
    def local_fail_machine_types(self) -> frozenset[str]:
        return _csv(self.vmbot_local_fail_machine_types)

    @property
    def region_priority(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_csv_list(self.vmbot_region_priority)))

    @property
    def region_caps(self) -> dict[str, int]:
        """Per-region vCPU caps from VMBOT_REGION_CAPS ("region=vcpus,...")."""
        caps: dict[str, int] = {}
        for item in _csv_list(self.vmbot_region_caps):
            region, sep, value = item.partition("=")
            if not sep or not value.strip().isdigit():
                raise ConfigError(
                    f"VMBOT_REGION_CAPS has {item!r}; write region=vcpus, e.g. us-east1=16."
                )
            caps[region.strip()] = int(value)
        return caps

    @property
    def admin_user_ids(self) -> frozenset[str]:
        return frozenset(u.strip() for u in self.vmbot_admins.split(",") if u.strip())

    def secret(self, name: str) -> str:
        value = getattr(self, name)
        if value is None or not value.get_secret_value():
            raise ConfigError(f"{name.upper()} is not set. Put it in the environment or in .env.")
        return str(value.get_secret_value())


def _csv_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _csv(value: str) -> frozenset[str]:
    return frozenset(_csv_list(value))


class ConfigError(Exception):
    """A setting is missing or wrong; the message says which and how to fix it."""
