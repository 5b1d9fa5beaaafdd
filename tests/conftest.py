"""Shared fixtures: real PostgreSQL, real Redis, the Slack emulator, the real Bolt app served
over HTTP, and a real Celery worker process.

Tests share one database and one worker, so each test uses its own Slack user and channel ids.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import waitress
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.app import build_app
from bot.bootstrap import Runtime, build_runtime
from bot.slack_emulator import SlackEmulator
from bot.slack_wire import SlackWire
from bot.web import WebApp
from db.migrate import upgrade
from provisioning.settings import Settings
from tests.fakes.gce_server import FakeComputeEngine

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
SIGNING_SECRET = "test-signing-secret-" + uuid.uuid4().hex
BOT_TOKEN = "xoxb-test-" + uuid.uuid4().hex[:12]
ADMIN_CHANNEL = "CADMINTEST"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated with Alembic, dropped at the end."""
    name = f"vmbot_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - turned into an actionable message
        pytest.fail(
            f"PostgreSQL is needed at {make_url(PG_SERVER).render_as_string(hide_password=True)} "
            f"(set TEST_DATABASE_URL, or run `make services`): {exc}"
        )
    url = make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.fail(
            f"Redis is needed at {REDIS_URL} (set TEST_REDIS_URL, or `make services`): {exc}"
        )
    return REDIS_URL


@pytest.fixture(scope="session")
def emulator() -> Iterator[SlackEmulator]:
    emu = SlackEmulator(bot_token=BOT_TOKEN, team_id="T0TEST")
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def stack_env(pg_url: str, redis_url: str, emulator: SlackEmulator, tmp_path_factory) -> dict:
    state = tmp_path_factory.mktemp("vmbot-state")
    return {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": emulator.base_url,
        "SLACK_APP_TOKEN": "",
        "VMBOT_STATE_DIR": str(state),
        "VMBOT_QUEUE": f"vmbot-test-{uuid.uuid4().hex[:8]}",
        "VMBOT_BACKEND": "local",
        "VMBOT_LOCAL_STEP_SECONDS": "0.2",
        "VMBOT_SLACK_UPDATE_INTERVAL": "0.05",
        "VMBOT_ADMIN_CHANNEL": ADMIN_CHANNEL,
        "VMBOT_ADMINS": "U0BOOTADMIN",
        "OPENAI_API_KEY": "",
    }


@dataclass
class Stack:
    runtime: Runtime
    wire: SlackWire
    emulator: SlackEmulator
    url: str
    web: WebApp


@pytest.fixture(scope="session")
def stack(stack_env: dict, emulator: SlackEmulator) -> Iterator[Stack]:
    """The web process: the real Bolt app over HTTP, wired from settings like `vmbot serve`."""
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in stack_env.items()})
    runtime = build_runtime(settings)
    app = build_app(settings, runtime.services(), runtime.client)
    web = WebApp(app, {"database": runtime.check_database, "broker": runtime.check_broker})
    server = waitress.create_server(web, host="127.0.0.1", port=0, threads=24)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}"
    wire = SlackWire(SIGNING_SECRET, f"{url}/slack/events", team_id="T0TEST")
    yield Stack(runtime=runtime, wire=wire, emulator=emulator, url=url, web=web)
    server.close()
    runtime.close()


@pytest.fixture(scope="session")
def worker(stack_env: dict, tmp_path_factory) -> Iterator[subprocess.Popen]:
    """A real `vmbot worker` process on Redis; its log is printed if a test fails to start it."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {**os.environ, **stack_env}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot.cli",
                "worker",
                "--no-beat",
                "--pool",
                "threads",
                "--concurrency",
                "4",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    deadline = time.monotonic() + 30
    while b"ready." not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("worker did not start:\n" + log_path.read_text()[-4000:])
        time.sleep(0.2)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both databases the product runs on: a migrated SQLite file, and the test PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'vmbot.sqlite'}"
        upgrade(url)
        return url
    return request.getfixturevalue("pg_url")


@contextmanager
def _scratch_database() -> Iterator[str]:
    name = f"vmbot_scratch_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def scratch_pg_url(pg_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own, for tests that scan every VM (reconcile)."""
    with _scratch_database() as url:
        yield url


@pytest.fixture
def scratch_redis_url(redis_url: str) -> Iterator[str]:
    """A Redis database no session worker listens on, emptied before and after the test."""
    url = make_url_redis(redis_url, db=14)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


def make_url_redis(url: str, *, db: int) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{db}"


@pytest.fixture
def fake_gce() -> Iterator[FakeComputeEngine]:
    """The fake Compute Engine REST server, on a free port."""
    fake = FakeComputeEngine()
    fake.start()
    yield fake
    fake.stop()
