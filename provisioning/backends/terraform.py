"""The terraform backend: each VM is one root module in a working directory of its own.

Choices worth knowing:

- **Working directory per VM.** `ROOT/NAME/` holds a copy of the module's `*.tf` files (copied
  again on every command, so a module upgrade reaches old VMs on their next stop, start or
  destroy), `vmbot.auto.tfvars.json` with the VM's variables, and, by default, the local state.
- **State.** Local state in that directory by default. With a GCS bucket configured, a
  `vmbot_backend.tf` holding `backend "gcs" {}` is written beside the module and init gets
  `-backend-config=bucket=...` and `-backend-config=prefix=PREFIX/NAME`: one state per VM.
- **Idempotent create.** create always plans: after a crash the same variables plan the same
  state, so an instance that was made is found (no changes) and one that was not is made once.
- **Stop and start** re-apply the same variables with `desired_status` TERMINATED or RUNNING.
- **The state remembers its inputs.** The module outputs its own variables (`inputs`), so a
  worker whose working directory was lost (another machine, with GCS state) can still stop,
  start or destroy the VM.
- **get and list_managed read terraform's outputs** from the last apply; they make no cloud call,
  so an instance deleted behind terraform's back (Compute Engine's max_run_duration backstop, a
  reclaimed Spot VM) shows until the next apply or destroy. list_managed sees the working
  directories on this machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from provisioning.errors import BackendError, TransientError
from provisioning.ports import Instance, InstanceRequest, Progress
from provisioning.terraform_runner import (
    PLAN_FILE,
    VARS_FILE,
    LineCallback,
    TerraformError,
    TerraformRunner,
)

log = logging.getLogger(__name__)

DEFAULT_MODULE_DIR = Path(__file__).resolve().parents[2] / "terraform"
BACKEND_FILE = "vmbot_backend.tf"
NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"[^-_a-z0-9]")
# The lines of terraform's output worth a status update: a resource starting or finishing.
RESOURCE_STEP = re.compile(
    r"^[\w.\[\]\"-]+: (Creating|Creation complete|Destroying|Destruction complete|Modifying"
    r"|Modifications complete|Still [a-z]+)"
)
STILL_EVERY_SECONDS = 60.0
T = TypeVar("T")


def instance_variables(
    request: InstanceRequest, project: str, image_projects: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The module's variables for a request: a pure mapping, validated again by the module.

    `image_projects` names the project that publishes each image family (from the catalog);
    a family not in it is left for the module to infer from its name.
    """
    zone = request.zone or f"{request.region}-b"
    return {
        "project": project,
        "name": request.name,
        "zone": zone,
        "machine_type": request.machine_type,
        "image_family": request.os_image,
        "image_project": (image_projects or {}).get(request.os_image, ""),
        "os_family": request.os_family,
        "disk_gb": request.disk_gb,
        "disk_type": request.disk_type,
        "public_ip": request.public_ip,
        "labels": {key: _label_value(value) for key, value in request.labels.items()},
        "ssh_keys": list(request.ssh_keys),
        "startup_script": request.startup_script or "",
        "gpu_type": request.gpu_type or "",
        "gpu_count": request.gpu_count if request.gpu_type else 0,
        "spot": request.spot,
        "max_run_hours": request.max_run_hours or 0,
        "source_ranges": list(request.source_ranges),
        "desired_status": "RUNNING",
    }


def _label_value(value: str) -> str:
    # Label values allow only lower-case letters, digits, - and _; an odd owner id must not
    # fail a whole VM.
    return LABEL_VALUE.sub("_", value.lower())[:63]


class ProgressFilter:
    """Turns terraform's stream of lines into the few worth a status update.

    Every line still reaches `log`; `progress` gets resource steps, and "Still creating…" at most
    once a minute, so a slow GPU VM does not fill the thread.
    """

    def __init__(
        self,
        progress: Progress,
        log: LineCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._progress = progress
        self._log = log
        self._clock = clock
        self._last_still = float("-inf")

    def __call__(self, line: str) -> None:
        if self._log is not None:
            self._log(line)
        match = RESOURCE_STEP.match(line)
        if match is None:
            return
        if match.group(1).startswith("Still"):
            now = self._clock()
            if now - self._last_still < STILL_EVERY_SECONDS:
                return
            self._last_still = now
        self._progress(line.strip())


class TerraformBackend:
    name = "terraform"

    def __init__(
        self,
        runner: TerraformRunner,
        *,
        root_dir: str | Path,
        project: str,
        module_dir: str | Path = DEFAULT_MODULE_DIR,
        state_bucket: str | None = None,
        state_prefix: str = "vmbot",
        image_projects: Mapping[str, str] | None = None,
        log: LineCallback | None = None,
    ) -> None:
        self._runner = runner
        self._root = Path(root_dir)
        self._project = project
        self._module = Path(module_dir)
        self._bucket = state_bucket
        self._prefix = state_prefix.strip("/")
        self._image_projects = dict(image_projects or {})
        # Every line terraform prints goes here (the worker's log by default); only resource
        # steps reach the request's thread.
        self._log = log or _log_line

    # -- the CloudBackend protocol --------------------------------------------------------

    def create(self, request: InstanceRequest, progress: Progress) -> Instance:
        workdir = self._prepare(request.name)
        variables = instance_variables(request, self._project, self._image_projects)
        progress(f"Planning {request.machine_type} in {variables['zone']} with Terraform")
        self._runner.write_variables(workdir, variables)
        self._converge(workdir, request.name, "create", progress)
        instance = self._read(workdir, request.name)
        if instance is None:
            raise BackendError(
                f"Terraform applied {request.name} but reported no instance; "
                "check the module's outputs."
            )
        return instance

    def delete(self, name: str, zone: str | None) -> None:
        workdir = self._workdir(name)
        if not self._has_state(workdir):
            shutil.rmtree(workdir, ignore_errors=True)
            return
        workdir = self._prepare(name)
        if self._variables(workdir, name) is None:
            shutil.rmtree(workdir, ignore_errors=True)  # nothing was ever applied
            return
        filtered = ProgressFilter(lambda _: None, self._log)
        self._call("destroy", name, lambda: self._runner.destroy(workdir, filtered))
        shutil.rmtree(workdir, ignore_errors=True)

    def get(self, name: str, zone: str | None) -> Instance | None:
        workdir = self._workdir(name)
        if not self._has_state(workdir):
            return None
        return self._read(self._prepare(name), name)

    def stop(self, name: str, zone: str | None) -> Instance:
        return self._set_status(name, "TERMINATED")

    def start(self, name: str, zone: str | None) -> Instance:
        return self._set_status(name, "RUNNING")

    def list_managed(self) -> list[Instance]:
        if not self._root.is_dir():
            return []
        found = []
        for workdir in sorted(self._root.iterdir()):
            if NAME.match(workdir.name) and (workdir / VARS_FILE).is_file():
                instance = self.get(workdir.name, None)
                if instance is not None:
                    found.append(instance)
        return found

    # -- the steps ------------------------------------------------------------------------

    def _workdir(self, name: str) -> Path:
        if not NAME.match(name):
            raise BackendError(f"{name!r} is not a valid VM name, so Terraform was not run.")
        return self._root / name

    def _has_state(self, workdir: Path) -> bool:
        # With GCS state, any machine can pick a VM up; locally, the directory is the state.
        return (
            self._bucket is not None
            or (workdir / VARS_FILE).is_file()
            or (workdir / "terraform.tfstate").is_file()
        )

    def _prepare(self, name: str) -> Path:
        """Lay out the working directory and init it (idempotent, and quick once done)."""
        workdir = self._workdir(name)
        workdir.mkdir(parents=True, exist_ok=True)
        self._copy_module(workdir)
        backend_config: list[tuple[str, str]] = []
        if self._bucket:
            (workdir / BACKEND_FILE).write_text('terraform {\n  backend "gcs" {}\n}\n')
            backend_config = [("bucket", self._bucket), ("prefix", f"{self._prefix}/{name}")]
        # init is idempotent but not free (a GCS round trip, a provider check): skip it while
        # neither the module nor the backend settings changed since the last successful one.
        stamp = workdir / ".terraform" / "vmbot-init.sha256"
        if not stamp.is_file() or stamp.read_text() != _init_digest(workdir, backend_config):
            self._call(
                "prepare",
                name,
                lambda: self._runner.init(workdir, self._log, backend_config=backend_config),
            )
            stamp.parent.mkdir(exist_ok=True)
            stamp.write_text(_init_digest(workdir, backend_config))  # init writes the lock file
        return workdir

    def _copy_module(self, workdir: Path) -> None:
        sources = sorted(self._module.glob("*.tf"))
        if not sources:
            raise BackendError(
                f"The Terraform module is missing: {self._module} has no .tf files. "
                "Set VMBOT_TERRAFORM_MODULE_DIR to the repository's terraform/ directory."
            )
        wanted = {path.name for path in sources} | {BACKEND_FILE}
        for stale in workdir.glob("*.tf"):
            if stale.name not in wanted:
                stale.unlink()
        for path in sources:
            shutil.copyfile(path, workdir / path.name)
        lock_file = self._module / ".terraform.lock.hcl"
        if lock_file.is_file():
            shutil.copyfile(lock_file, workdir / lock_file.name)

    def _converge(self, workdir: Path, name: str, action: str, progress: Progress) -> None:
        filtered = ProgressFilter(progress, self._log)
        changes = self._call(action, name, lambda: self._runner.plan(workdir, filtered))
        if changes:
            self._call(action, name, lambda: self._runner.apply(workdir, filtered))
        else:
            (workdir / PLAN_FILE).unlink(missing_ok=True)

    def _variables(self, workdir: Path, name: str) -> dict[str, Any] | None:
        """The VM's variables: from the working directory, else from the state's `inputs`."""
        path = workdir / VARS_FILE
        if path.is_file():
            return dict(json.loads(path.read_text()))
        inputs = self._call("read", name, lambda: self._runner.output(workdir)).get("inputs")
        if not isinstance(inputs, dict):
            return None
        self._runner.write_variables(workdir, inputs)
        return dict(inputs)

    def _set_status(self, name: str, status: str) -> Instance:
        workdir = self._workdir(name)
        variables = self._variables(self._prepare(name), name) if self._has_state(workdir) else None
        if variables is None:
            raise BackendError(
                f"Terraform has no VM called {name}: it was never created here or is destroyed."
            )
        variables["desired_status"] = status
        self._runner.write_variables(workdir, variables)
        self._converge(workdir, name, "stop" if status == "TERMINATED" else "start", self._log_only)
        instance = self._read(workdir, name)
        if instance is None:
            raise BackendError(f"Terraform changed {name} but reported no instance afterwards.")
        return instance

    def _log_only(self, line: str) -> None:
        self._log(line)

    def _read(self, workdir: Path, name: str) -> Instance | None:
        outputs = self._call("read", name, lambda: self._runner.output(workdir))
        if not outputs.get("instance_id"):
            return None
        status = str(outputs.get("status") or "UNKNOWN")
        return Instance(
            name=str(outputs.get("name") or name),
            instance_id=str(outputs["instance_id"]),
            zone=_short_zone(str(outputs.get("zone") or "")),
            status=status,
            ip=(outputs.get("external_ip") or outputs.get("internal_ip"))
            if status == "RUNNING"
            else None,
        )

    def _call(self, action: str, name: str, step: Callable[[], T]) -> T:
        try:
            return step()
        except TerraformError as exc:
            if exc.lock_held:
                raise TransientError(
                    f"Another Terraform run holds the state lock of {name}; "
                    "this job will retry once it is released."
                ) from exc
            raise BackendError(f"Terraform could not {action} {name}: {exc}") from exc


def _log_line(line: str) -> None:
    log.debug("terraform: %s", line)


def _init_digest(workdir: Path, backend_config: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256(json.dumps(backend_config).encode())
    for path in sorted(workdir.glob("*.tf")) + [workdir / ".terraform.lock.hcl"]:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _short_zone(zone: str) -> str:
    # The provider reports zones as names or, in some versions, as full self links.
    return zone.rstrip("/").rsplit("/", 1)[-1]
