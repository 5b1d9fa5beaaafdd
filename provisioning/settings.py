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
    port: int = Field(default=3000, ge=1, le=65535)

    # Storage and jobs
    database_url: str = "sqlite:///.vmbot/vmbot.sqlite"
    redis_url: str | None = None  # None: the embedded broker (sandbox only)
    vmbot_state_dir: str = ".vmbot"

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

    # People and policy
    vmbot_admin_channel: str | None = None
    vmbot_admins: str = ""  # comma-separated Slack user ids
    vmbot_default_role: Role = "requester"
    vmbot_auto_approve_usd_per_hour: float = Field(default=1.0, ge=0)
    vmbot_auto_approve_usd_total: float = Field(default=10.0, ge=0)
    vmbot_default_ttl_hours: float = Field(default=4.0, gt=0)

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
    def admin_user_ids(self) -> frozenset[str]:
        return frozenset(u.strip() for u in self.vmbot_admins.split(",") if u.strip())

    def secret(self, name: str) -> str:
        value = getattr(self, name)
        if value is None or not value.get_secret_value():
            raise ConfigError(f"{name.upper()} is not set. Put it in the environment or in .env.")
        return str(value.get_secret_value())


class ConfigError(Exception):
    """A setting is missing or wrong; the message says which and how to fix it."""
