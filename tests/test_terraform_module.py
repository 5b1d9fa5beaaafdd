"""The Compute Engine module in terraform/, checked without the google provider (not to be had
offline): `terraform fmt -check`, its structure parsed with python-hcl2, and its variables and
locals evaluated by the real terraform binary (they need no provider).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from provisioning.terraform_runner import RunnerConfig, TerraformError, TerraformRunner
from tests.test_terraform import MODULE, packaged_terraform

# -- fmt and structure -----------------------------------------------------------------------


def test_module_and_fixture_are_terraform_fmt_clean() -> None:
    for directory in [MODULE, MODULE.parent / "tests" / "data" / "terraform"]:
        done = subprocess.run(
            [str(packaged_terraform()), "fmt", "-check", "-recursive", "-diff", str(directory)],
            capture_output=True,
            text=True,
            env={"CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": "/dev/null"},
            check=False,
        )
        assert done.returncode == 0, f"terraform fmt would change {directory}:\n{done.stdout}"


def _clean(value: Any) -> Any:
    """python-hcl2's tree with its quotes and bookkeeping keys removed."""
    if isinstance(value, dict):
        return {
            _clean(key): _clean(item)
            for key, item in value.items()
            if key not in {"__is_block__", "__comments__", "__inline_comments__"}
        }
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse(name: str) -> dict[str, Any]:
    with open(MODULE / name) as file:
        return dict(_clean(hcl2.load(file)))


def _blocks(tree: dict[str, Any], kind: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in tree.get(kind, []):
        merged.update(block)
    return merged


@pytest.fixture(scope="module")
def module() -> dict[str, dict[str, Any]]:
    files = {path.name: _parse(path.name) for path in sorted(MODULE.glob("*.tf"))}
    assert set(files) == {"locals.tf", "main.tf", "outputs.tf", "variables.tf", "versions.tf"}
    return files


def test_versions_require_the_google_provider(module: dict[str, dict[str, Any]]) -> None:
    (terraform,) = module["versions.tf"]["terraform"]
    (providers,) = terraform["required_providers"]
    assert providers["google"]["source"] == "hashicorp/google"
    assert "backend" not in terraform  # local state unless vm-creator adds a gcs backend file


def test_instance_has_every_part_the_design_asks_for(module: dict[str, dict[str, Any]]) -> None:
    resources = _blocks(module["main.tf"], "resource")
    vm = resources["google_compute_instance"]["vm"]

    assert vm["machine_type"] == "${var.machine_type}"
    assert vm["labels"] == "${local.labels}"
    assert vm["metadata"] == "${local.metadata}"
    assert vm["desired_status"] == "${var.desired_status}"
    (boot_disk,) = vm["boot_disk"]
    (params,) = boot_disk["initialize_params"]
    assert (params["image"], params["size"], params["type"]) == (
        "${local.image}",
        "${var.disk_gb}",
        "${var.disk_type}",
    )
    (nic,) = vm["network_interface"]
    assert nic["network"] == "${var.network}"
    (access,) = nic["dynamic"]
    assert access["access_config"]["for_each"] == "${var.public_ip ? [1] : []}"

    (gpu,) = vm["dynamic"]
    assert gpu["guest_accelerator"]["for_each"] == "${local.attach_gpu ? [1] : []}"
    assert gpu["guest_accelerator"]["content"] == [
        {"type": "${var.gpu_type}", "count": "${var.gpu_count}"}
    ]

    (scheduling,) = vm["scheduling"]
    assert scheduling["on_host_maintenance"] == "${local.on_host_maintenance}"
    assert scheduling["provisioning_model"] == "${local.provisioning_model}"
    assert scheduling["preemptible"] == "${var.spot}"
    assert scheduling["automatic_restart"] == "${local.automatic_restart}"
    assert scheduling["instance_termination_action"] == "${local.termination_action}"
    (backstop,) = scheduling["dynamic"]
    assert backstop["max_run_duration"]["content"] == [{"seconds": "${max_run_duration.value}"}]


def test_firewall_admits_only_the_configured_ranges(module: dict[str, dict[str, Any]]) -> None:
    firewall = _blocks(module["main.tf"], "resource")["google_compute_firewall"]["access"]
    assert firewall["direction"] == "INGRESS"
    assert firewall["source_ranges"] == "${var.source_ranges}"
    assert firewall["target_tags"] == ["${var.name}"]
    assert firewall["allow"] == [{"protocol": "tcp", "ports": ["${local.access.port}"]}]


def test_every_variable_is_described_and_the_risky_ones_validated(
    module: dict[str, dict[str, Any]],
) -> None:
    variables = _blocks(module["variables.tf"], "variable")
    assert all(v.get("description") for v in variables.values())
    validated = {name for name, v in variables.items() if v.get("validation")}
    assert validated >= {
        "project",
        "name",
        "zone",
        "machine_type",
        "image_family",
        "os_family",
        "disk_gb",
        "disk_type",
        "labels",
        "ssh_keys",
        "startup_script",
        "gpu_type",
        "gpu_count",
        "max_run_hours",
        "source_ranges",
        "desired_status",
    }
    assert variables["source_ranges"]["default"] == ["35.235.240.0/20"]
    assert variables["desired_status"]["default"] == "RUNNING"


def test_outputs_include_what_the_backend_reads(module: dict[str, dict[str, Any]]) -> None:
    outputs = _blocks(module["outputs.tf"], "output")
    assert set(outputs) >= {
        "instance_id",
        "name",
        "zone",
        "status",
        "internal_ip",
        "external_ip",
        "inputs",
    }
    variables = _blocks(module["variables.tf"], "variable")
    assert set(outputs["inputs"]["value"]) == set(variables)  # the state remembers every input


# -- variables and locals, evaluated by terraform ---------------------------------------------

BASE = {
    "project": "test-project",
    "name": "box",
    "zone": "us-central1-b",
    "machine_type": "e2-standard-2",
    "image_family": "ubuntu-2204-lts",
    "labels": {"owner": "u0maria", "request": "42"},
}

DERIVED = {
    "image": "${local.image}",
    "labels": "${local.labels}",
    "metadata": "${local.metadata}",
    "attach_gpu": "${local.attach_gpu}",
    "on_host_maintenance": "${local.on_host_maintenance}",
    "provisioning_model": "${local.provisioning_model}",
    "automatic_restart": "${local.automatic_restart}",
    "termination_action": "${local.termination_action}",
    "max_run_seconds": "${local.max_run_seconds}",
    "firewall": "${local.firewall_name}",
    "port": "${local.access.port}",
}

CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plain linux": (
        {"ssh_keys": ["maria:ssh-ed25519 AAAAC3Nz maria@laptop"], "startup_script": "echo hi"},
        {
            "image": "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts",
            "labels": {"managed-by": "vmbot", "owner": "u0maria", "request": "42"},
            "metadata": {
                "ssh-keys": "maria:ssh-ed25519 AAAAC3Nz maria@laptop",
                "startup-script": "echo hi",
            },
            "attach_gpu": False,
            "on_host_maintenance": "MIGRATE",
            "provisioning_model": "STANDARD",
            "automatic_restart": True,
            "termination_action": None,
            "max_run_seconds": 0,
            "firewall": "box-ssh",
            "port": "22",
        },
    ),
    "windows with a TTL": (
        {
            "os_family": "windows",
            "image_family": "windows-2022",
            "startup_script": "Write-Output hi",
            "max_run_hours": 2.5,
            "labels": {"managed-by": "someone-else", "owner": "u1", "request": "7"},
        },
        {
            "image": "projects/windows-cloud/global/images/family/windows-2022",
            "labels": {"managed-by": "vmbot", "owner": "u1", "request": "7"},
            "metadata": {"windows-startup-script-ps1": "Write-Output hi"},
            "attach_gpu": False,
            "on_host_maintenance": "MIGRATE",
            "provisioning_model": "STANDARD",
            "automatic_restart": True,
            "termination_action": "DELETE",
            "max_run_seconds": 9000,
            "firewall": "box-rdp",
            "port": "3389",
        },
    ),
    "attached GPU on spot": (
        {
            "machine_type": "n1-standard-8",
            "gpu_type": "nvidia-tesla-t4",
            "gpu_count": 2,
            "spot": True,
            "image_family": "debian-12",
        },
        {
            "image": "projects/debian-cloud/global/images/family/debian-12",
            "attach_gpu": True,
            "on_host_maintenance": "TERMINATE",
            "provisioning_model": "SPOT",
            "automatic_restart": False,
            "termination_action": "DELETE",
        },
    ),
    "GPU bundled with the machine type": (
        {"machine_type": "g2-standard-8", "gpu_type": "nvidia-l4", "gpu_count": 1},
        {"attach_gpu": False, "on_host_maintenance": "TERMINATE", "provisioning_model": "STANDARD"},
    ),
    "long name, explicit image project": (
        {"name": "a" * 63, "image_family": "my-golden-image", "image_project": "images-prod"},
        {
            "image": "projects/images-prod/global/images/family/my-golden-image",
            "firewall": "a" * 49 + "-" + hashlib.sha1(b"a" * 63).hexdigest()[:8] + "-ssh",
        },
    ),
}


@pytest.fixture(scope="module")
def probe_runner(tmp_path_factory: pytest.TempPathFactory) -> TerraformRunner:
    # No provider is needed, so no mirror either: a CLI config that names none is enough.
    config = tmp_path_factory.mktemp("probe-cli") / "terraform.tfrc"
    config.write_text("")
    return TerraformRunner(
        RunnerConfig(terraform_bin=str(packaged_terraform()), cli_config_file=str(config))
    )


def _probe_dir(root: Path, cases: dict[str, dict[str, Any]]) -> Path:
    """A root module with one instance of variables.tf + locals.tf per case, and their locals
    as outputs."""
    vm = root / "vm"
    vm.mkdir(parents=True)
    for name in ("variables.tf", "locals.tf"):
        shutil.copyfile(MODULE / name, vm / name)
    (vm / "probe.tf.json").write_text(json.dumps({"output": {"derived": {"value": DERIVED}}}))
    modules = {f"case{i}": {"source": "./vm", **v} for i, v in enumerate(cases.values())}
    outputs = {key: {"value": f"${{module.{key}.derived}}"} for key in modules}
    (root / "main.tf.json").write_text(json.dumps({"module": modules, "output": outputs}))
    return root


def test_locals_derive_the_right_instance_settings(
    probe_runner: TerraformRunner, tmp_path: Path
) -> None:
    cases = {name: BASE | variables for name, (variables, _) in CASES.items()}
    workdir = _probe_dir(tmp_path, cases)
    probe_runner.init(workdir)
    probe_runner.plan(workdir)
    probe_runner.apply(workdir)
    outputs = probe_runner.output(workdir)
    for i, (name, (_, expected)) in enumerate(CASES.items()):
        derived = outputs[f"case{i}"]
        assert {key: derived[key] for key in expected} == expected, name


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"source_ranges": ["0.0.0.0/0"]}, "Opening SSH or RDP to the whole internet"),
        ({"source_ranges": ["not-a-cidr"]}, "Source ranges must be a non-empty list of CIDR"),
        ({"name": "Bad_Name"}, "The name must be 1-63 lower-case letters"),
        ({"gpu_count": 3}, "The GPU count must be 0, 1, 2, 4, 8 or 16."),
        ({"max_run_hours": 5000}, "The maximum run time must be 0 (none) or from 30 seconds"),
        ({"labels": {"owner": "Maria Smith"}}, "Label keys and values must be lower-case"),
        ({"ssh_keys": ["maria:ssh-ed25519 AAAA\nevil"]}, "Each SSH key must be one line"),
        ({"desired_status": "SUSPENDED"}, "The desired status must be RUNNING or TERMINATED."),
    ],
)
def test_variables_refuse_bad_values(
    probe_runner: TerraformRunner, tmp_path: Path, variables: dict[str, Any], message: str
) -> None:
    workdir = _probe_dir(tmp_path, {"bad": BASE | variables})
    probe_runner.init(workdir)
    with pytest.raises(TerraformError) as failure:
        probe_runner.plan(workdir)
    assert "Error: Invalid value for variable" in str(failure.value)
    assert message in " ".join(str(failure.value).split())
