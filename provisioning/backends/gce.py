"""The Compute Engine backend, on the google-cloud-compute client.

Every call is a `*_unary` one followed by `ZoneOperationsClient.wait`: an operation's own
`.result()` polls Google's real host even when the client points elsewhere. Inserts carry a
`request_id` derived from the VM's name and zone, so a retried insert (after a timeout, a crash,
a redelivered job) is recognised by Compute Engine and never makes a second instance.

Errors come out as the two kinds the provisioner knows: `TransientError` (retry later) and
`BackendError` (a sentence saying why the cloud refused).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import compute_v1

from provisioning.errors import BackendError, TransientError
from provisioning.ports import Instance, InstanceRequest, Progress

log = logging.getLogger(__name__)

MANAGED_FILTER = 'labels.managed-by = "vmbot"'
# Machine families whose GPUs come with the machine type; others take attached accelerators.
_BUNDLED_GPU_FAMILIES = ("a2-", "a3-", "a4-", "g2-", "g4-")
_REQUEST_ID_NAMESPACE = uuid.UUID("5b0c7f8e-4f5a-4c1e-9a43-6d1f3c2b7e10")


def insert_request_id(project: str, zone: str, name: str) -> str:
    """The same UUID for every attempt at creating this VM, so Compute Engine deduplicates."""
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, f"insert/{project}/{zone}/{name}"))


def _last(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def _is_quota(text: str) -> bool:
    lowered = text.lower()
    return "quota" in lowered and ("exceed" in lowered or "limit" in lowered)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn the client's exceptions into TransientError or BackendError, with a sentence."""
    try:
        yield
    except (gexc.TooManyRequests, gexc.ServiceUnavailable, gexc.InternalServerError) as exc:
        raise TransientError(f"Compute Engine is busy ({exc.code}) while {what}") from exc
    except (gexc.DeadlineExceeded, gexc.GatewayTimeout, gexc.RetryError) as exc:
        raise TransientError(f"Compute Engine timed out while {what}") from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"Compute Engine could not be reached while {what}") from exc
    except gexc.Forbidden as exc:
        if _is_quota(exc.message) or any(
            "quota" in str(e.get("reason", "")).lower() for e in exc.errors if isinstance(e, dict)
        ):
            raise BackendError(
                f"The project's quota is exhausted while {what}: {exc.message} "
                "Destroy a VM you no longer need, pick another region, or ask an admin "
                "to raise the quota."
            ) from exc
        raise BackendError(
            f"Compute Engine refused access while {what} (403: {exc.message}); the service "
            "account needs the Compute Instance Admin role on the project."
        ) from exc
    except gexc.GoogleAPICallError as exc:
        raise BackendError(
            f"Compute Engine refused while {what} ({exc.code}): {exc.message}"
        ) from exc


class GceBackend:
    name = "gce"

    def __init__(
        self,
        project: str,
        *,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        image_projects: Mapping[str, str] | None = None,
        network: str = "global/networks/default",
        operation_timeout: float = 600.0,
        poll_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.project = project
        kwargs: dict[str, Any] = {}
        if endpoint:
            kwargs["client_options"] = ClientOptions(api_endpoint=endpoint)
            # An emulator wants no Google credentials unless some were given on purpose.
            kwargs["credentials"] = credentials or AnonymousCredentials()
        elif credentials is not None:
            kwargs["credentials"] = credentials
        # Without either, the clients find application default credentials themselves.
        self._instances = compute_v1.InstancesClient(**kwargs)
        self._operations = compute_v1.ZoneOperationsClient(**kwargs)
        self._regions = compute_v1.RegionsClient(**kwargs)
        self._image_projects = dict(image_projects or {})
        self._network = network
        self._timeout = operation_timeout
        self._poll = poll_seconds
        self._sleep = sleep

    # -- building the instance ------------------------------------------------------------

    def _image(self, family: str) -> str:
        project = self._image_projects.get(family)
        if project is None:
            raise BackendError(f"I don't know which project publishes the {family} image.")
        return f"projects/{project}/global/images/family/{family}"

    def instance_resource(self, request: InstanceRequest, zone: str) -> compute_v1.Instance:
        """The Instance body for an insert: pure, so tests can read it without a server."""
        metadata: list[compute_v1.Items] = []
        if request.ssh_keys and request.os_family == "linux":
            metadata.append(compute_v1.Items(key="ssh-keys", value="\n".join(request.ssh_keys)))
        if request.startup_script:
            key = (
                "windows-startup-script-ps1" if request.os_family == "windows" else "startup-script"
            )
            metadata.append(compute_v1.Items(key=key, value=request.startup_script))
        scheduling = compute_v1.Scheduling()
        if request.max_run_hours:
            # The TTL's backstop: Compute Engine deletes the VM itself if beat never does.
            scheduling.max_run_duration = compute_v1.Duration(
                seconds=max(30, int(request.max_run_hours * 3600))  # 30 s is the minimum
            )
            scheduling.instance_termination_action = "DELETE"
        if request.spot:
            scheduling.provisioning_model = "SPOT"
            scheduling.instance_termination_action = "DELETE"
            scheduling.automatic_restart = False
        accelerators = []
        if request.gpu_type and request.gpu_count:
            scheduling.on_host_maintenance = "TERMINATE"  # GPUs cannot live-migrate
            if not request.machine_type.startswith(_BUNDLED_GPU_FAMILIES):
                accelerators.append(
                    compute_v1.AcceleratorConfig(
                        accelerator_type=f"zones/{zone}/acceleratorTypes/{request.gpu_type}",
                        accelerator_count=request.gpu_count,
                    )
                )
        interface = compute_v1.NetworkInterface(network=self._network)
        if request.public_ip:
            interface.access_configs = [
                compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")
            ]
        return compute_v1.Instance(
            name=request.name,
            machine_type=f"zones/{zone}/machineTypes/{request.machine_type}",
            labels=dict(request.labels),
            tags=compute_v1.Tags(
                items=["vmbot-rdp" if request.os_family == "windows" else "vmbot-ssh"]
            ),
            metadata=compute_v1.Metadata(items=metadata),
            disks=[
                compute_v1.AttachedDisk(
                    boot=True,
                    auto_delete=True,
                    initialize_params=compute_v1.AttachedDiskInitializeParams(
                        source_image=self._image(request.os_image),
                        disk_size_gb=request.disk_gb,
                        disk_type=f"zones/{zone}/diskTypes/{request.disk_type}",
                    ),
                )
            ],
            network_interfaces=[interface],
            guest_accelerators=accelerators,
            scheduling=scheduling,
        )

    # -- operations -----------------------------------------------------------------------

    def _wait(self, operation: compute_v1.Operation, zone: str, what: str) -> None:
        """Wait for a zonal operation to finish; raise BackendError if it failed."""
        deadline = time.monotonic() + self._timeout
        done = compute_v1.Operation.Status.DONE
        while operation.status != done:
            if time.monotonic() > deadline:
                raise TransientError(f"Compute Engine is still {what} after {self._timeout:g} s")
            with _translated(what):
                operation = self._operations.wait(
                    project=self.project, zone=zone, operation=operation.name
                )
        if operation.error and operation.error.errors:
            first = operation.error.errors[0]
            message = "; ".join(e.message for e in operation.error.errors if e.message)
            if "QUOTA" in first.code or _is_quota(message):
                raise BackendError(
                    f"The project's quota is exhausted while {what}: {message}. Destroy a VM "
                    "you no longer need, pick another region, or ask an admin to raise the quota."
                )
            if first.code in ("ZONE_RESOURCE_POOL_EXHAUSTED", "RESOURCE_NOT_READY"):
                raise TransientError(f"Compute Engine has no capacity right now: {message}")
            raise BackendError(f"Compute Engine failed while {what}: {first.code}: {message}")

    def _get(self, name: str, zone: str) -> compute_v1.Instance | None:
        try:
            with _translated(f"reading {name}"):
                return self._instances.get(project=self.project, zone=zone, instance=name)
        except BackendError as exc:
            if isinstance(exc.__cause__, gexc.NotFound):
                return None
            raise

    @staticmethod
    def _view(found: compute_v1.Instance) -> Instance:
        ip = None
        if found.status == "RUNNING":
            for interface in found.network_interfaces:
                # The public address when there is one, else the internal one (IAP, VPN).
                public = [a.nat_i_p for a in interface.access_configs if a.nat_i_p]
                ip = public[0] if public else (interface.network_i_p or None)
                if ip:
                    break
        return Instance(
            name=found.name,
            instance_id=str(found.id),
            zone=_last(found.zone),
            status=found.status,
            ip=ip,
        )

    def _until(self, name: str, zone: str, statuses: set[str], what: str) -> Instance:
        deadline = time.monotonic() + self._timeout
        while True:
            found = self._get(name, zone)
            if found is None:
                raise BackendError(f"{name} disappeared from {zone} while {what}.")
            if found.status in statuses:
                return self._view(found)
            if time.monotonic() > deadline:
                raise TransientError(f"{name} is still {found.status} after {self._timeout:g} s")
            self._sleep(self._poll)

    @staticmethod
    def _zone(request_zone: str | None, region: str | None = None) -> str:
        if request_zone:
            return request_zone
        if region:
            return f"{region}-b"
        raise BackendError("The Compute Engine backend needs a zone for every instance.")

    # -- CloudBackend ---------------------------------------------------------------------

    def create(self, request: InstanceRequest, progress: Progress) -> Instance:
        zone = self._zone(request.zone, request.region)
        existing = self._get(request.name, zone)
        if existing is None:
            progress(f"Creating {request.machine_type} in {zone}")
            body = self.instance_resource(request, zone)
            try:
                with _translated(f"creating {request.name} in {zone}"):
                    operation = self._instances.insert_unary(
                        request=compute_v1.InsertInstanceRequest(
                            project=self.project,
                            zone=zone,
                            instance_resource=body,
                            request_id=insert_request_id(self.project, zone, request.name),
                        )
                    )
            except BackendError as exc:
                # Made by an earlier attempt whose request id has lapsed: carry on with it.
                if not isinstance(exc.__cause__, gexc.Conflict):
                    raise
            else:
                self._wait(operation, zone, f"creating {request.name} in {zone}")
        elif existing.status in ("STOPPING", "TERMINATED", "STOPPED", "SUSPENDED"):
            return self.start(request.name, zone)
        instance = self._until(request.name, zone, {"RUNNING"}, f"starting {request.name}")
        if request.packages:
            progress("Installing " + ", ".join(request.packages))
        return instance

    def delete(self, name: str, zone: str | None) -> None:
        zone = self._zone(zone)
        try:
            with _translated(f"deleting {name}"):
                operation = self._instances.delete_unary(
                    project=self.project, zone=zone, instance=name
                )
        except BackendError as exc:
            if isinstance(exc.__cause__, gexc.NotFound):
                return  # gone already: that is what we wanted
            raise
        self._wait(operation, zone, f"deleting {name}")

    def get(self, name: str, zone: str | None) -> Instance | None:
        found = self._get(name, self._zone(zone))
        return None if found is None else self._view(found)

    def stop(self, name: str, zone: str | None) -> Instance:
        zone = self._zone(zone)
        with _translated(f"stopping {name}"):
            operation = self._instances.stop_unary(project=self.project, zone=zone, instance=name)
        self._wait(operation, zone, f"stopping {name}")
        return self._until(name, zone, {"TERMINATED", "STOPPED"}, f"stopping {name}")

    def start(self, name: str, zone: str | None) -> Instance:
        zone = self._zone(zone)
        with _translated(f"starting {name}"):
            operation = self._instances.start_unary(project=self.project, zone=zone, instance=name)
        self._wait(operation, zone, f"starting {name}")
        return self._until(name, zone, {"RUNNING"}, f"starting {name}")

    def list_managed(self) -> list[Instance]:
        request = compute_v1.AggregatedListInstancesRequest(
            project=self.project, filter=MANAGED_FILTER
        )
        found: list[Instance] = []
        with _translated("listing instances"):
            for _scope, scoped in self._instances.aggregated_list(request=request):
                for instance in scoped.instances:
                    if instance.labels.get("managed-by") == "vmbot":
                        found.append(self._view(instance))
        return sorted(found, key=lambda i: (i.zone, i.name))

    # -- quota ----------------------------------------------------------------------------

    def cpu_quota(self, region: str) -> tuple[float, float] | None:
        """The region's CPUS quota as (limit, usage); None when it cannot be read now."""
        try:
            with _translated(f"reading the quota of {region}"):
                found = self._regions.get(project=self.project, region=region)
        except (BackendError, TransientError) as exc:
            log.warning("no CPUS quota for %s: %s", region, exc)
            return None
        for quota in found.quotas:
            if quota.metric == "CPUS":
                return float(quota.limit), float(quota.usage)
        return None
