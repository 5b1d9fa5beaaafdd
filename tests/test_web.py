"""/healthz and /metrics of `vmbot serve`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from bot.web import WebApp
from tests.conftest import Stack


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_healthz_checks_database_and_broker(stack: Stack) -> None:
    status, body = get(stack.url + "/healthz")
    assert status == 200
    assert json.loads(body) == {"ok": True, "database": "ok", "broker": "ok"}


def test_healthz_reports_a_dead_dependency(stack: Stack) -> None:
    def broken() -> None:
        raise ConnectionRefusedError("nothing listens there")

    web = WebApp(stack.web._slack.app, {"database": stack.runtime.check_database, "broker": broken})
    healthy, report = web.health()
    assert not healthy
    assert report == {"database": "ok", "broker": "error: ConnectionRefusedError"}


def test_metrics_are_prometheus_text(stack: Stack) -> None:
    get(stack.url + "/healthz")
    status, body = get(stack.url + "/metrics")
    assert status == 200
    assert 'vmbot_http_requests_total{path="/healthz",status="200"}' in body


def test_unknown_path_is_404(stack: Stack) -> None:
    status, body = get(stack.url + "/nope")
    assert status == 404 and "/slack/events" in body
