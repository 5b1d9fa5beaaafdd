"""The gce backend on the real google-cloud-compute client, against the fake Compute Engine
REST server over HTTP: what it sends, and how it behaves when the cloud misbehaves."""

from __future__ import annotations

import socket

import pytest

from provisioning.backends.gce import GceBackend, insert_request_id
from provisioning.errors import BackendError, TransientError
from tests.fakes.gce_server import FakeComputeEngine, Fault
from tests.test_backend_contract import a_request, gce_backend


def test_the_instance_body_carries_labels_keys_script_gpu_spot_and_backstop(
    fake_gce: FakeComputeEngine,
) -> None:
    request = a_request(
        machine_type="n1-standard-4",
        gpu_type="nvidia-tesla-t4",
        gpu_count=1,
        spot=True,
        max_run_hours=3,
        ssh_keys=("maria:ssh-ed25519 AAAAC3Nza maria@laptop",),
    )
    gce_backend(fake_gce).create(request, lambda _: None)
    body = fake_gce.instance(request.name)
    assert body is not None
    assert body["labels"] == {"managed-by": "vmbot", "owner": "u1", "request": "7"}
    assert body["metadata"]["items"] == [
        {"key": "ssh-keys", "value": "maria:ssh-ed25519 AAAAC3Nza maria@laptop"},
        {"key": "startup-script", "value": request.startup_script},
    ]
    assert body["scheduling"] == {
        "provisioningModel": "SPOT",
        "automaticRestart": False,
        "onHostMaintenance": "TERMINATE",
        "instanceTerminationAction": "DELETE",
        "maxRunDuration": {"seconds": "10800"},
    }
    assert body["guestAccelerators"] == [
        {
            "acceleratorType": "zones/us-central1-b/acceleratorTypes/nvidia-tesla-t4",
            "acceleratorCount": 1,
        }
    ]
    disk = body["disks"][0]
    assert disk["boot"] and disk["autoDelete"]
    assert disk["initializeParams"] == {
        "sourceImage": "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts",
        "diskSizeGb": "30",
        "diskType": "zones/us-central1-b/diskTypes/pd-balanced",
    }
    assert body["tags"] == {"items": ["vmbot-ssh"]}
    assert body["networkInterfaces"][0]["accessConfigs"][0]["type"] == "ONE_TO_ONE_NAT"


def test_windows_gets_its_own_script_key_and_bundled_gpus_no_accelerators(
    fake_gce: FakeComputeEngine,
) -> None:
    backend = gce_backend(fake_gce)
    windows = backend.instance_resource(
        a_request(os_family="windows", os_image="windows-2022", ssh_keys=("a:b c",)),
        "us-central1-b",
    )
    assert [i.key for i in windows.metadata.items] == ["windows-startup-script-ps1"]
    l4 = backend.instance_resource(
        a_request(machine_type="g2-standard-8", gpu_type="nvidia-l4", gpu_count=1), "us-east1-b"
    )
    assert not l4.guest_accelerators and l4.scheduling.on_host_maintenance == "TERMINATE"


def test_the_insert_uses_a_request_id_derived_from_the_name(fake_gce: FakeComputeEngine) -> None:
    request = a_request()
    gce_backend(fake_gce).create(request, lambda _: None)
    expected = insert_request_id(fake_gce.project, "us-central1-b", request.name)
    assert list(fake_gce.request_ids) == [expected]
    assert expected == insert_request_id(fake_gce.project, "us-central1-b", request.name)
    assert expected != insert_request_id(fake_gce.project, "us-central1-c", request.name)


def test_anonymous_credentials_against_another_endpoint(fake_gce: FakeComputeEngine) -> None:
    gce_backend(fake_gce).get("nothing", "us-central1-b")
    assert fake_gce.authorization and set(fake_gce.authorization) == {None}


def test_a_lost_answer_then_a_retry_makes_one_instance(fake_gce: FakeComputeEngine) -> None:
    backend = gce_backend(fake_gce)
    request = a_request()
    # The cloud makes the instance, but the answer is lost as a 503.
    fake_gce.inject(Fault("insert", 503, "Backend Error", "backendError", after=True))
    with pytest.raises(TransientError, match="busy"):
        backend.create(request, lambda _: None)
    # The retry's first look finds nothing yet, so it inserts again, with the same id.
    fake_gce.inject(Fault("get", 404, "not found yet", "notFound"))
    instance = backend.create(request, lambda _: None)
    assert instance.status == "RUNNING"
    assert fake_gce.inserts == 1
    assert [a for a, _ in fake_gce.calls].count("insert") == 2
    assert [i.name for i in backend.list_managed()] == [request.name]


def test_503_then_success(fake_gce: FakeComputeEngine) -> None:
    backend = gce_backend(fake_gce)
    fake_gce.inject(Fault("insert", 503, "Backend Error", "backendError"))
    with pytest.raises(TransientError):
        backend.create(a_request(name="retry-me"), lambda _: None)
    assert backend.create(a_request(name="retry-me"), lambda _: None).status == "RUNNING"
    assert fake_gce.inserts == 1


def test_429_is_transient(fake_gce: FakeComputeEngine) -> None:
    fake_gce.inject(Fault("get", 429, "Rate Limit Exceeded", "rateLimitExceeded"))
    with pytest.raises(TransientError):
        gce_backend(fake_gce).get("dev-x", "us-central1-b")


def test_quota_in_the_operation_is_a_clear_backend_error(fake_gce: FakeComputeEngine) -> None:
    fake_gce.quota_limits["us-central1"] = 2
    backend = gce_backend(fake_gce)
    backend.create(a_request(name="first"), lambda _: None)
    with pytest.raises(BackendError, match="quota is exhausted") as caught:
        backend.create(a_request(name="second"), lambda _: None)
    assert "Limit: 2 in region us-central1" in str(caught.value)
    assert fake_gce.inserts == 1


def test_quota_as_a_403_is_a_clear_backend_error(fake_gce: FakeComputeEngine) -> None:
    fake_gce.inject(
        Fault(
            "insert", 403, "Quota 'CPUS' exceeded. Limit: 8.0 in region us-east1.", "quotaExceeded"
        )
    )
    with pytest.raises(BackendError, match="quota is exhausted.*raise the quota"):
        gce_backend(fake_gce).create(a_request(), lambda _: None)


def test_other_403_says_which_role_is_missing(fake_gce: FakeComputeEngine) -> None:
    fake_gce.inject(Fault("insert", 403, "Required 'compute.instances.create'", "forbidden"))
    with pytest.raises(BackendError, match="Compute Instance Admin"):
        gce_backend(fake_gce).create(a_request(), lambda _: None)


def test_404_on_delete_is_already_gone(fake_gce: FakeComputeEngine) -> None:
    backend = gce_backend(fake_gce)
    backend.delete("never-existed", "us-central1-b")
    request = a_request()
    backend.create(request, lambda _: None)
    fake_gce.inject(Fault("delete", 404, "The resource was not found", "notFound"))
    backend.delete(request.name, request.zone)
    assert fake_gce.instance(request.name) is not None  # the fake said 404, so nothing ran


def test_cpu_quota_from_the_region(fake_gce: FakeComputeEngine) -> None:
    fake_gce.quota_limits["europe-west1"] = 12
    backend = gce_backend(fake_gce)
    backend.create(a_request(zone="europe-west1-b", region="europe-west1"), lambda _: None)
    assert backend.cpu_quota("europe-west1") == (12.0, 2.0)
    fake_gce.inject(Fault("region", 403, "Required compute.regions.get", "forbidden"))
    assert backend.cpu_quota("europe-west1") is None


def test_unreachable_endpoint_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = GceBackend("p", endpoint=f"http://127.0.0.1:{port}", poll_seconds=0)
    with pytest.raises(TransientError, match="could not be reached"):
        backend.get("dev-x", "us-central1-b")


def test_the_composition_root_builds_it_from_settings(fake_gce: FakeComputeEngine) -> None:
    from bot.bootstrap import build_backend, build_region_chooser
    from provisioning.settings import ConfigError, Settings

    settings = Settings(
        _env_file=None,
        vmbot_backend="gce",
        gcp_project_id=fake_gce.project,
        gce_api_endpoint=fake_gce.url,
    )
    backend = build_backend(settings)
    assert isinstance(backend, GceBackend)
    assert backend.create(a_request(), lambda _: None).status == "RUNNING"
    assert build_region_chooser(settings, backend).quota is backend  # real quota is checked
    with pytest.raises(ConfigError, match="GCP_PROJECT_ID"):
        build_backend(Settings(_env_file=None, vmbot_backend="gce"))
