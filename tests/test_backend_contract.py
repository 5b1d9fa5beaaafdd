"""One contract, two clouds: the simulated local backend and the gce backend on the real
google-cloud-compute client against the fake Compute Engine server over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from provisioning.backends.gce import GceBackend
from provisioning.backends.local import LocalBackend
from provisioning.ports import CloudBackend, InstanceRequest
from tests.conftest import unique
from tests.fakes.gce_server import FakeComputeEngine

IMAGES = {"ubuntu-2204-lts": "ubuntu-os-cloud", "windows-2022": "windows-cloud"}


def gce_backend(fake: FakeComputeEngine) -> GceBackend:
    return GceBackend(fake.project, endpoint=fake.url, image_projects=IMAGES, poll_seconds=0)


@pytest.fixture(params=["local", "gce"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CloudBackend]:
    if request.param == "local":
        yield LocalBackend(tmp_path, step_seconds=0, sleep=lambda _: None)
    else:
        yield gce_backend(request.getfixturevalue("fake_gce"))


def a_request(**changes) -> InstanceRequest:
    base = InstanceRequest(
        name=f"dev-{unique('').lower()}",
        machine_type="e2-standard-2",
        region="us-central1",
        zone="us-central1-b",
        os_image="ubuntu-2204-lts",
        disk_gb=30,
        disk_type="pd-balanced",
        gpu_type=None,
        gpu_count=0,
        spot=False,
        packages=("redis",),
        labels={"managed-by": "vmbot", "owner": "u1", "request": "7"},
        max_run_hours=2,
        startup_script="#!/bin/bash\nset -euo pipefail\n",
    )
    return replace(base, **changes)


def test_create_reaches_running_with_an_ip(backend: CloudBackend) -> None:
    steps: list[str] = []
    request = a_request()
    instance = backend.create(request, steps.append)
    assert instance.name == request.name and instance.status == "RUNNING"
    assert instance.ip and instance.instance_id and instance.zone == "us-central1-b"
    assert steps[0] == "Creating e2-standard-2 in us-central1-b"
    assert "Installing redis" in steps
    assert backend.get(request.name, "us-central1-b") == instance


def test_create_is_idempotent_by_name(backend: CloudBackend) -> None:
    request = a_request()
    first = backend.create(request, lambda _: None)
    again = backend.create(request, lambda _: None)
    assert again == first
    assert [i.name for i in backend.list_managed()].count(request.name) == 1


def test_delete_twice_is_fine(backend: CloudBackend) -> None:
    request = a_request()
    backend.create(request, lambda _: None)
    backend.delete(request.name, request.zone)
    backend.delete(request.name, request.zone)
    assert backend.get(request.name, request.zone) is None
    assert request.name not in {i.name for i in backend.list_managed()}


def test_stop_then_start_gives_the_address_back(backend: CloudBackend) -> None:
    request = a_request()
    running = backend.create(request, lambda _: None)
    stopped = backend.stop(request.name, request.zone)
    assert stopped.status == "TERMINATED" and stopped.ip is None
    assert backend.stop(request.name, request.zone).status == "TERMINATED"
    started = backend.start(request.name, request.zone)
    assert started.status == "RUNNING" and started.ip == running.ip
    assert started.instance_id == running.instance_id


def test_create_on_a_stopped_instance_starts_it(backend: CloudBackend) -> None:
    request = a_request()
    backend.create(request, lambda _: None)
    backend.stop(request.name, request.zone)
    assert backend.create(request, lambda _: None).status == "RUNNING"


def test_list_managed_shows_only_vmbot_instances(backend: CloudBackend) -> None:
    mine = a_request()
    other = a_request(labels={"team": "data"})
    backend.create(mine, lambda _: None)
    backend.create(other, lambda _: None)
    names = {i.name for i in backend.list_managed()}
    assert mine.name in names and other.name not in names
