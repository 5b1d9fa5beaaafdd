"""A simulated cloud for the sandbox, demos and tests: it behaves like one, slowly and by name.

Instances live in a small JSON file guarded by a file lock, so several worker processes share
one "cloud" and a restarted worker finds what an earlier one made. IPs come from 203.0.113.0/24
(TEST-NET-3), so nobody mistakes them for real addresses. Machine types listed in
VMBOT_LOCAL_FAIL_MACHINE_TYPES are refused, to rehearse failures on demand, and
VMBOT_LOCAL_STEP_SECONDS makes every step as slow as a real cloud (or slower, for crash tests).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from provisioning.errors import BackendError
from provisioning.ports import Instance, InstanceRequest, Progress

_INSERTS = "~inserts"  # not a valid instance name, so it never collides with one


class LocalBackend:
    name = "local"

    def __init__(
        self,
        state_dir: str | Path,
        *,
        step_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        fail_machine_types: frozenset[str] = frozenset(),
    ) -> None:
        self._path = Path(state_dir) / "local-cloud.json"
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._step = step_seconds
        self._sleep = sleep
        # Machine types whose creation fails, to rehearse failure paths on demand.
        self._fail = fail_machine_types

    @contextmanager
    def _instances(self) -> Iterator[dict[str, dict[str, Any]]]:
        with open(self._path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self._path.read_text()) if self._path.exists() else {}
                yield data
                tmp = self._path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
                tmp.replace(self._path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _ip(name: str) -> str:
        return f"203.0.113.{int(hashlib.sha256(name.encode()).hexdigest(), 16) % 254 + 1}"

    def create(self, request: InstanceRequest, progress: Progress) -> Instance:
        existing = self.get(request.name, request.zone)
        if existing is not None and existing.status == "RUNNING":
            return existing
        if existing is not None and existing.status == "TERMINATED":
            return self.start(request.name, existing.zone)
        zone = request.zone or f"{request.region}-b"
        if request.machine_type in self._fail:
            raise BackendError(
                f"The local cloud refused {request.machine_type} in {zone} (failure on demand)."
            )
        with self._instances() as instances:
            if request.name not in instances:
                instances[request.name] = {
                    "instance_id": str(
                        int(hashlib.sha256(request.name.encode()).hexdigest()[:15], 16)
                    ),
                    "zone": zone,
                    "status": "PROVISIONING",
                    "ip": None,
                    "labels": request.labels,
                    "machine_type": request.machine_type,
                    "startup_script": request.startup_script,
                    "ssh_keys": list(request.ssh_keys),
                }
                # Every instance ever made, so tests can tell a retry from a second instance.
                made = instances.setdefault(_INSERTS, {"names": []})
                made["names"].append(request.name)
        progress(f"Creating {request.machine_type} in {zone}")
        self._sleep(self._step)
        if request.packages:
            progress("Installing " + ", ".join(request.packages))
            self._sleep(self._step)
        with self._instances() as instances:
            record = instances[request.name]
            record["status"] = "RUNNING"
            record["ip"] = self._ip(request.name)
        found = self.get(request.name, zone)
        assert found is not None
        return found

    def delete(self, name: str, zone: str | None) -> None:
        self._sleep(self._step / 2)
        if name == _INSERTS:
            return
        with self._instances() as instances:
            instances.pop(name, None)

    def inserts(self) -> list[str]:
        """The name of every instance this cloud has created, in order, repeats included."""
        with self._instances() as instances:
            return list(instances.get(_INSERTS, {}).get("names", []))

    def record(self, name: str) -> dict[str, Any] | None:
        """What the cloud holds for `name` (labels, startup script, ...), for tests and demos."""
        with self._instances() as instances:
            found = instances.get(name) if name != _INSERTS else None
            return dict(found) if found is not None else None

    def get(self, name: str, zone: str | None) -> Instance | None:
        if name == _INSERTS:
            return None
        with self._instances() as instances:
            record = instances.get(name)
        if record is None:
            return None
        return Instance(
            name=name,
            instance_id=record["instance_id"],
            zone=record["zone"],
            status=record["status"],
            ip=record["ip"],
        )

    def _set_status(self, name: str, status: str, ip: str | None) -> Instance:
        self._sleep(self._step / 2)
        with self._instances() as instances:
            record = instances.get(name) if name != _INSERTS else None
            if record is None:
                raise BackendError(f"There is no instance called {name} in the local cloud.")
            record["status"], record["ip"] = status, ip
        found = self.get(name, None)
        assert found is not None
        return found

    def stop(self, name: str, zone: str | None) -> Instance:
        return self._set_status(name, "TERMINATED", None)

    def start(self, name: str, zone: str | None) -> Instance:
        return self._set_status(name, "RUNNING", self._ip(name))

    def list_managed(self) -> list[Instance]:
        with self._instances() as instances:
            names = sorted(
                name
                for name, record in instances.items()
                if name != _INSERTS and record.get("labels", {}).get("managed-by") == "vmbot"
            )
        found = (self.get(name, None) for name in names)
        return [instance for instance in found if instance is not None]
