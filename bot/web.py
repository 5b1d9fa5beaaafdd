"""The HTTP face of `vmbot serve`: Slack events, health and metrics, as one WSGI app."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, make_wsgi_app
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

log = logging.getLogger(__name__)

HealthCheck = Callable[[], None]  # raises when the thing it checks is down


class WebApp:
    def __init__(self, app: App, checks: dict[str, HealthCheck]) -> None:
        self._slack = SlackRequestHandler(app, path="/slack/events")
        self._checks = checks
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "vmbot_http_requests",
            "HTTP requests by path and status",
            ["path", "status"],
            registry=self.registry,
        )
        self._metrics = make_wsgi_app(self.registry)

    def health(self) -> tuple[bool, dict[str, str]]:
        report: dict[str, str] = {}
        healthy = True
        for name, check in self._checks.items():
            try:
                check()
                report[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means unhealthy, and is reported
                healthy = False
                report[name] = f"error: {type(exc).__name__}"
                log.warning("health check %s failed: %s", name, exc)
        return healthy, report

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        status_holder: list[str] = []
        result: Iterable[bytes]

        def recording_start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            status_holder.append(status.split()[0])
            return start_response(status, headers, *exc)

        if path == "/healthz":
            result = self._healthz(recording_start)
        elif path == "/metrics":
            result = self._metrics(environ, recording_start)
        elif path == "/slack/events":
            result = self._slack(environ, recording_start)
        else:
            recording_start("404 Not Found", [("Content-Type", "text/plain")])
            result = [b"Not found. Slack sends its requests to /slack/events.\n"]
        known = path if path in ("/healthz", "/metrics", "/slack/events") else "other"
        self._requests.labels(known, status_holder[0] if status_holder else "?").inc()
        return result

    def _healthz(self, start_response: Callable[..., Any]) -> list[bytes]:
        healthy, report = self.health()
        status = "200 OK" if healthy else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps({"ok": healthy, **report}).encode()]
