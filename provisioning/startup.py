"""Startup scripts, built only from the allow-listed recipes in `provisioning.recipes`.

A script is the concatenation of fixed text from the tables below, chosen by recipe name and
image family. Nothing from a request, a model or a user ever enters it: names that are not on
the allow-list are refused before anything is rendered, and every word in the tables is checked
against a conservative pattern when this module is imported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from provisioning.recipes import RECIPES_BY_NAME, OsFamily, with_requirements

VENV = "/opt/vmbot/venv"  # one virtualenv for Python tools, so PEP 668 images are fine


class StartupError(ValueError):
    """A script cannot be built; the message says which recipe and image are the problem."""


@dataclass(frozen=True)
class Steps:
    """How one recipe is installed by one package manager: packages, then fixed commands."""

    packages: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()


def _same(packages: tuple[str, ...] = (), commands: tuple[str, ...] = ()) -> dict[str, Steps]:
    steps = Steps(packages, commands)
    return {"apt": steps, "dnf": steps}


def _pip(*packages: str) -> dict[str, Steps]:
    return _same(commands=(f"{VENV}/bin/pip install --quiet {' '.join(packages)}",))


def _service(
    apt: tuple[str, ...], dnf: tuple[str, ...], apt_unit: str, dnf_unit: str
) -> dict[str, Steps]:
    return {
        "apt": Steps(apt, (f"systemctl enable --now {apt_unit}",)),
        "dnf": Steps(dnf, (f"systemctl enable --now {dnf_unit}",)),
    }


def _container(name: str, image: str, ports: str) -> dict[str, Steps]:
    # Software that no distribution ships runs as a container: docker.io on Debian and Ubuntu,
    # podman on Rocky; both take the same `run` arguments.
    run = f"run -d --name {name} --restart unless-stopped {ports} {image}"
    return {
        "apt": Steps(("docker.io",), ("systemctl enable --now docker", f"docker {run}")),
        "dnf": Steps(("podman",), (f"podman {run}",)),
    }


# Recipe name -> package manager -> steps. A recipe missing a manager is not offered there.
LINUX: Mapping[str, Mapping[str, Steps]] = {
    "python3": {
        "apt": Steps(("python3", "python3-pip", "python3-venv"), (f"python3 -m venv {VENV}",)),
        "dnf": Steps(("python3", "python3-pip"), (f"python3 -m venv {VENV}",)),
    },
    "nodejs": _same(("nodejs", "npm")),
    "java": {
        "apt": Steps(("default-jdk-headless",)),
        "dnf": Steps(("java-17-openjdk-headless",)),
    },
    "golang": {"apt": Steps(("golang-go",)), "dnf": Steps(("golang",))},
    "ruby": {
        "apt": Steps(("ruby-full", "ruby-dev", "build-essential")),
        "dnf": Steps(("ruby", "ruby-devel", "gcc", "make", "redhat-rpm-config")),
    },
    "php": {"apt": Steps(("php-cli", "php-fpm")), "dnf": Steps(("php-cli", "php-fpm"))},
    "django": _pip("django"),
    "flask": _pip("flask"),
    "fastapi": _pip("fastapi", "uvicorn"),
    "rails": _same(commands=("gem install --no-document rails",)),
    "postgresql": {
        "apt": Steps(("postgresql",), ("systemctl enable --now postgresql",)),
        "dnf": Steps(
            ("postgresql-server",),
            ("postgresql-setup --initdb || true", "systemctl enable --now postgresql"),
        ),
    },
    "mysql": _service(("mysql-server",), ("mysql-server",), "mysql", "mysqld"),
    "mongodb": _container("mongodb", "mongo:7", "-p 127.0.0.1:27017:27017"),
    "redis": _service(("redis-server",), ("redis",), "redis-server", "redis"),
    "elasticsearch": _container(
        "elasticsearch",
        "elasticsearch:8.13.4",
        "-e discovery.type=single-node -e xpack.security.enabled=false -p 127.0.0.1:9200:9200",
    ),
    "rabbitmq": _container("rabbitmq", "rabbitmq:3-management", "-p 5672:5672 -p 15672:15672"),
    "docker": {
        "apt": Steps(("docker.io",), ("systemctl enable --now docker",)),
        "dnf": Steps(("podman-docker",)),
    },
    "nginx": _service(("nginx",), ("nginx",), "nginx", "nginx"),
    "apache2": _service(("apache2",), ("httpd",), "apache2", "httpd"),
    # Compute Engine's public images carry the Cloud SDK's package source, which has kubectl.
    "kubectl": _same(("kubectl",)),
    "jenkins": _container("jenkins", "jenkins/jenkins:lts-jdk17", "-p 8080:8080"),
    "jupyter": _pip("jupyterlab"),
    "cuda": {
        # The driver and toolkit from the distribution; Rocky needs NVIDIA's own repository,
        # which the bot does not add, so CUDA is offered on Debian and Ubuntu images only.
        "apt": Steps(("nvidia-driver", "nvidia-cuda-toolkit")),
    },
    "pytorch": _pip("torch"),
    "tensorflow": _pip("tensorflow"),
}

# Recipe name -> PowerShell lines, for Windows images.
WINDOWS: Mapping[str, tuple[str, ...]] = {
    "docker": ("Install-WindowsFeature -Name Containers",),
}

# Every word a table may contain: package names, paths, flags, image references.
_SAFE_WORD = re.compile(r"^[A-Za-z0-9@%+=:,./_-]+$|^\|\|$")


def _check_tables() -> None:
    for recipe, managers in LINUX.items():
        for steps in managers.values():
            for word in (*steps.packages, *(w for c in steps.commands for w in c.split())):
                if not _SAFE_WORD.match(word):
                    raise AssertionError(f"unsafe word {word!r} in the {recipe} recipe")
    for recipe, lines in WINDOWS.items():
        for word in (w for line in lines for w in line.split()):
            if not _SAFE_WORD.match(word):
                raise AssertionError(f"unsafe word {word!r} in the {recipe} Windows recipe")


_check_tables()


def package_manager(image_family: str) -> str:
    """apt for Debian and Ubuntu images, dnf for Rocky, RHEL, CentOS and Fedora."""
    if image_family.startswith(("ubuntu", "debian")):
        return "apt"
    if image_family.startswith(("rocky", "rhel", "centos", "fedora", "almalinux")):
        return "dnf"
    raise StartupError(f"I don't know how to install packages on {image_family} images.")


def render(packages: tuple[str, ...] | list[str], os_family: OsFamily, image_family: str) -> str:
    """The startup script for these recipes (plus what they require) on this image.

    Raises UnknownRecipe for a name off the allow-list and StartupError when a recipe is not
    offered on this OS or image.
    """
    names = with_requirements(list(packages))
    for name in names:
        if os_family not in RECIPES_BY_NAME[name].os_families:
            raise StartupError(f"{RECIPES_BY_NAME[name].label} is not offered on {os_family}.")
    if os_family == "windows":
        return _powershell(names)
    return _bash(names, package_manager(image_family), image_family)


def _bash(names: tuple[str, ...], manager: str, image_family: str) -> str:
    lines = [
        "#!/bin/bash",
        "# Written by vmbot from allow-listed recipes: " + (" ".join(names) or "none"),
        "set -euo pipefail",
        "export DEBIAN_FRONTEND=noninteractive",
        "marker=/var/lib/vmbot/startup-done",
        '[ -e "$marker" ] && exit 0  # runs on every boot; install once',
        "mkdir -p /var/lib/vmbot",
    ]
    steps = []
    for name in names:
        found = LINUX.get(name, {}).get(manager)
        if found is None:
            raise StartupError(
                f"{RECIPES_BY_NAME[name].label} is not offered on {image_family} images; "
                "pick an Ubuntu or Debian image."
            )
        steps.append((name, found))
    packages = [p for _, s in steps for p in s.packages]
    if packages:
        if manager == "apt":
            lines.append("apt-get update -q")
            lines.append("apt-get install -y -q " + " ".join(dict.fromkeys(packages)))
        else:
            lines.append("dnf install -y -q " + " ".join(dict.fromkeys(packages)))
    for name, found in steps:
        if found.commands:
            lines.append(f"# {name}")
            lines.extend(found.commands)
    lines.append('touch "$marker"')
    return "\n".join(lines) + "\n"


def _powershell(names: tuple[str, ...]) -> str:
    lines = [
        "# Written by vmbot from allow-listed recipes: " + (" ".join(names) or "none"),
        "$ErrorActionPreference = 'Stop'",
        "$marker = 'C:\\ProgramData\\vmbot\\startup-done'",
        "if (Test-Path $marker) { exit 0 }",
        "New-Item -ItemType Directory -Force -Path (Split-Path $marker) | Out-Null",
    ]
    for name in names:
        found = WINDOWS.get(name)
        if found is None:
            raise StartupError(f"{RECIPES_BY_NAME[name].label} has no Windows install steps.")
        lines.append(f"# {name}")
        lines.extend(found)
    lines.append("New-Item -ItemType File -Force -Path $marker | Out-Null")
    return "\r\n".join(lines) + "\r\n"
