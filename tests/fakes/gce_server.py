"""A small fake of the Compute Engine REST API, served over real HTTP from a thread.

It answers what `GceBackend` calls through the real google-cloud-compute client: instances
insert, get, delete, stop, start and aggregatedList; zoneOperations get and wait; regions get.
Inserts honour `requestId` (a repeat returns the first operation and makes nothing), and faults
can be queued: an HTTP error before or after the request takes effect, a quota limit per region.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

PREFIX = "/compute/v1/projects/"
ZONAL = re.compile(
    r"^/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/"
    r"(?P<kind>instances|operations)(?:/(?P<name>[^/]+))?(?:/(?P<verb>stop|start|wait))?$"
)
AGGREGATED = re.compile(r"^/compute/v1/projects/(?P<project>[^/]+)/aggregated/instances$")
REGION = re.compile(r"^/compute/v1/projects/(?P<project>[^/]+)/regions/(?P<region>[^/]+)$")
LABEL_FILTER = re.compile(r'labels\.(?P<key>[\w-]+)\s*=\s*"(?P<value>[^"]*)"')


@dataclass
class Fault:
    """Answer the next `times` calls of `action` with an HTTP error; with `after` the call
    takes effect first and only its answer is lost (a timeout after the cloud acted)."""

    action: str
    status: int
    message: str
    reason: str = ""
    times: int = 1
    after: bool = False


def _vcpus(machine_type: str) -> float:
    last = machine_type.rsplit("-", 1)[-1]
    return float(last) if last.isdigit() else 1.0


def _error(status: int, message: str, reason: str = "") -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason or "error"}],
        }
    }


@dataclass
class FakeComputeEngine:
    project: str = "vmbot-test"
    quota_limits: dict[str, float] = field(default_factory=dict)  # region -> CPUS limit
    instances: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    request_ids: dict[str, str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (action, path)
    authorization: list[str | None] = field(default_factory=list)
    inserts: int = 0  # instances actually created
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # -- control --------------------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                fake.authorization.append(self.headers.get("Authorization"))
                status, payload = fake.handle(method, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._answer("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._answer("DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def add_instance(self, name: str, zone: str, labels: dict[str, str]) -> None:
        """An instance made behind our back (by a human, or a lost database row)."""
        with self._lock:
            self._create(zone, {"name": name, "labels": labels, "machineType": "e2-small"})
            self.instances[(zone, name)]["status"] = "RUNNING"

    def instance(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return next((i for (_, n), i in self.instances.items() if n == name), None)

    # -- the API --------------------------------------------------------------------------

    def _fault(self, action: str, after: bool) -> Fault | None:
        for fault in self.faults:
            if fault.action == action and fault.after == after:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def handle(self, method: str, raw_path: str, body: dict[str, Any]) -> tuple[int, Any]:
        url = urlparse(raw_path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        action, match = self._route(method, url.path)
        with self._lock:
            self.calls.append((action, url.path))
            if match is None:
                return 404, _error(404, f"The resource '{url.path}' was not found", "notFound")
            if match["project"] != self.project:
                return 404, _error(404, f"The project {match['project']} was not found")
            fault = self._fault(action, after=False)
            if fault is not None:
                return fault.status, _error(fault.status, fault.message, fault.reason)
            status, payload = self._do(action, match, query, body)
            fault = self._fault(action, after=True)
            if fault is not None:
                return fault.status, _error(fault.status, fault.message, fault.reason)
            return status, payload

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, dict[str, str] | None]:
        if m := AGGREGATED.match(path):
            return "list", m.groupdict()
        if m := REGION.match(path):
            return "region", m.groupdict()
        m = ZONAL.match(path)
        if m is None:
            return f"{method} {path}", None
        kind, name, verb = m["kind"], m["name"], m["verb"]
        if kind == "operations":
            return ("wait" if verb == "wait" else "operation"), m.groupdict()
        if name is None:
            return ("insert" if method == "POST" else "zone-list"), m.groupdict()
        if verb:
            return verb, m.groupdict()
        return {"GET": "get", "DELETE": "delete"}.get(method, method), m.groupdict()

    def _do(
        self, action: str, m: dict[str, str], query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, Any]:
        zone, name = m.get("zone", ""), m.get("name") or ""
        if action == "insert":
            return self._insert(zone, body, query.get("requestId"))
        if action in ("operation", "wait"):
            operation = self.operations.get(name)
            if operation is None:
                return 404, _error(404, f"The operation '{name}' was not found", "notFound")
            return 200, self._finish(operation)
        if action == "list":
            return 200, self._aggregated(query.get("filter", ""))
        if action == "region":
            return 200, self._region(m["region"])
        instance = self.instances.get((zone, name))
        if instance is None:
            return 404, _error(
                404,
                f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' "
                "was not found",
                "notFound",
            )
        if action == "get":
            # The cloud gets on with its work whether or not anyone waits for it.
            for operation in list(self.operations.values()):
                if operation["targetLink"].endswith(f"/zones/{zone}/instances/{name}"):
                    self._finish(operation)
            return 200, self.instances.get((zone, name), instance)
        if action in ("delete", "stop", "start"):
            return 200, self._operation(zone, action, instance)
        return 400, _error(400, f"{action} is not supported by the fake")

    def _used(self, region: str) -> float:
        return sum(
            _vcpus(i["machineType"])
            for (zone, _), i in self.instances.items()
            if zone.rsplit("-", 1)[0] == region and i["status"] != "TERMINATED"
        )

    def _insert(self, zone: str, body: dict[str, Any], request_id: str | None) -> tuple[int, Any]:
        if request_id and request_id in self.request_ids:
            return 200, self.operations[self.request_ids[request_id]]
        name = body.get("name", "")
        if (zone, name) in self.instances:
            return 409, _error(
                409,
                f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' "
                "already exists",
                "alreadyExists",
            )
        region = zone.rsplit("-", 1)[0]
        limit = self.quota_limits.get(region)
        wanted = _vcpus(body.get("machineType", ""))
        if limit is not None and self._used(region) + wanted > limit:
            # As Compute Engine does: the insert is accepted, its operation fails.
            operation = self._operation(zone, "insert", {"name": name, "id": "0"})
            operation["status"] = "DONE"
            operation["error"] = {
                "errors": [
                    {
                        "code": "QUOTA_EXCEEDED",
                        "message": f"Quota 'CPUS' exceeded.  Limit: {limit:g} in region {region}.",
                    }
                ]
            }
            operation["httpErrorStatusCode"] = 403
        else:
            instance = self._create(zone, body)
            operation = self._operation(zone, "insert", instance)
        if request_id:
            self.request_ids[request_id] = operation["name"]
        return 200, operation

    def _create(self, zone: str, body: dict[str, Any]) -> dict[str, Any]:
        self.inserts += 1
        name = body["name"]
        digest = hashlib.sha256(f"{zone}/{name}/{self.inserts}".encode()).hexdigest()
        instance = {
            **body,
            "id": str(int(digest[:15], 16)),
            "zone": f"https://compute.example/compute/v1/projects/{self.project}/zones/{zone}",
            "status": "PROVISIONING",
            "machineType": body.get("machineType", "").rsplit("/", 1)[-1],
            "selfLink": f"projects/{self.project}/zones/{zone}/instances/{name}",
        }
        for index, interface in enumerate(instance.get("networkInterfaces", [])):
            interface["networkIP"] = f"10.128.0.{index + 2}"
        self.instances[(zone, name)] = instance
        return instance

    def _operation(self, zone: str, kind: str, instance: dict[str, Any]) -> dict[str, Any]:
        name = f"operation-{uuid.uuid4().hex[:12]}"
        operation = {
            "name": name,
            "kind": "compute#operation",
            "operationType": kind,
            "status": "RUNNING",
            "zone": f"projects/{self.project}/zones/{zone}",
            "targetLink": f"projects/{self.project}/zones/{zone}/instances/{instance['name']}",
            "targetId": instance.get("id", "0"),
            "progress": 0,
        }
        self.operations[name] = operation
        return operation

    def _finish(self, operation: dict[str, Any]) -> dict[str, Any]:
        """Operations finish on their first poll; the instance changes state then."""
        if operation["status"] == "DONE":
            return operation
        operation["status"], operation["progress"] = "DONE", 100
        zone = operation["zone"].rsplit("/", 1)[-1]
        name = operation["targetLink"].rsplit("/", 1)[-1]
        instance = self.instances.get((zone, name))
        kind = operation["operationType"]
        if instance is None:
            return operation
        if kind == "delete":
            del self.instances[(zone, name)]
        elif kind == "stop":
            instance["status"] = "TERMINATED"
            for interface in instance.get("networkInterfaces", []):
                for access in interface.get("accessConfigs", []):
                    access.pop("natIP", None)
        elif kind in ("insert", "start"):
            instance["status"] = "RUNNING"
            digest = int(hashlib.sha256(name.encode()).hexdigest(), 16)
            for interface in instance.get("networkInterfaces", []):
                for access in interface.get("accessConfigs", []):
                    access["natIP"] = f"198.51.100.{digest % 254 + 1}"
        return operation

    def _aggregated(self, filter_text: str) -> dict[str, Any]:
        wanted = {m["key"]: m["value"] for m in LABEL_FILTER.finditer(filter_text)}
        items: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for (zone, _), instance in sorted(self.instances.items()):
            labels = instance.get("labels", {})
            if all(labels.get(k) == v for k, v in wanted.items()):
                items.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(instance)
        return {"kind": "compute#instanceAggregatedList", "items": items}

    def _region(self, region: str) -> dict[str, Any]:
        limit = self.quota_limits.get(region, 24.0)
        return {
            "kind": "compute#region",
            "name": region,
            "status": "UP",
            "quotas": [
                {"metric": "INSTANCES", "limit": 1000.0, "usage": 0.0},
                {"metric": "CPUS", "limit": limit, "usage": self._used(region)},
            ],
        }
