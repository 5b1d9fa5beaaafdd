"""Startup scripts: every recipe renders on every OS it declares, and nothing else gets in."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioning import startup
from provisioning.catalog import default_catalog
from provisioning.recipes import RECIPES, RECIPES_BY_NAME, UnknownRecipe

LINUX_IMAGES = [i.family for i in default_catalog().images if i.os_family == "linux"]
WINDOWS_IMAGES = [i.family for i in default_catalog().images if i.os_family == "windows"]


def images_for(recipe_name: str, os_family: str) -> list[str]:
    return LINUX_IMAGES if os_family == "linux" else WINDOWS_IMAGES


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_every_recipe_renders_on_each_os_family_it_declares(recipe) -> None:
    for os_family in recipe.os_families:
        rendered_somewhere = False
        for image in images_for(recipe.name, os_family):
            try:
                script = startup.render([recipe.name], os_family, image)
            except startup.StartupError as exc:
                # Allowed only when the recipe is honestly not offered on that image.
                assert "not offered on" in str(exc) and image.startswith("rocky"), exc
                continue
            rendered_somewhere = True
            assert f"# {recipe.name}" in script or recipe.name in script.splitlines()[1]
        assert rendered_somewhere, f"{recipe.name} renders on no {os_family} image"


def test_every_linux_recipe_has_apt_steps_and_the_table_names_only_recipes() -> None:
    for recipe in RECIPES:
        if "linux" in recipe.os_families:
            assert "apt" in startup.LINUX.get(recipe.name, {}), recipe.name
    assert set(startup.LINUX) <= set(RECIPES_BY_NAME)
    assert set(startup.WINDOWS) <= set(RECIPES_BY_NAME)


def test_bash_for_ubuntu_exact() -> None:
    script = startup.render(["django", "redis"], "linux", "ubuntu-2204-lts")
    assert script == (
        "#!/bin/bash\n"
        "# Written by vmbot from allow-listed recipes: python3 django redis\n"
        "set -euo pipefail\n"
        "export DEBIAN_FRONTEND=noninteractive\n"
        "marker=/var/lib/vmbot/startup-done\n"
        '[ -e "$marker" ] && exit 0  # runs on every boot; install once\n'
        "mkdir -p /var/lib/vmbot\n"
        "apt-get update -q\n"
        "apt-get install -y -q python3 python3-pip python3-venv redis-server\n"
        "# python3\n"
        "python3 -m venv /opt/vmbot/venv\n"
        "# django\n"
        "/opt/vmbot/venv/bin/pip install --quiet django\n"
        "# redis\n"
        "systemctl enable --now redis-server\n"
        'touch "$marker"\n'
    )


def test_dnf_on_rocky_and_services_named_the_rocky_way() -> None:
    script = startup.render(["redis", "mysql"], "linux", "rocky-linux-9")
    assert "dnf install -y -q mysql-server redis" in script
    assert "systemctl enable --now mysqld" in script and "apt-get" not in script


def test_no_packages_still_makes_a_valid_script() -> None:
    script = startup.render([], "linux", "debian-12")
    assert script.startswith("#!/bin/bash\n") and "set -euo pipefail" in script
    assert "apt-get" not in script


def test_powershell_for_windows() -> None:
    script = startup.render([], "windows", "windows-2022")
    assert "$ErrorActionPreference = 'Stop'" in script and "\r\n" in script
    assert "#!/bin/bash" not in script


def test_a_linux_only_recipe_is_refused_on_windows() -> None:
    with pytest.raises(startup.StartupError, match="not offered on windows"):
        startup.render(["postgresql"], "windows", "windows-2022")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("image", LINUX_IMAGES)
def test_every_linux_script_is_valid_bash(image) -> None:
    names = [
        r.name
        for r in RECIPES
        if "linux" in r.os_families and startup.package_manager(image) in startup.LINUX[r.name]
    ]
    script = startup.render(names, "linux", image)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


@given(st.text(min_size=1, max_size=40))
def test_arbitrary_text_as_a_package_name_is_refused(name: str) -> None:
    if name in RECIPES_BY_NAME:
        return
    with pytest.raises(UnknownRecipe):
        startup.render([name], "linux", "ubuntu-2204-lts")
    with pytest.raises(UnknownRecipe):
        startup.render(["redis", name], "windows", "windows-2022")


@given(st.lists(st.sampled_from(sorted(RECIPES_BY_NAME)), max_size=6))
def test_scripts_hold_only_table_text(names: list[str]) -> None:
    try:
        script = startup.render(names, "linux", "ubuntu-2404-lts-amd64")
    except startup.StartupError:
        return
    allowed = re.compile(r"^[A-Za-z0-9@%+=:,./_\-\s#!\"$&\[\];|()']*$")
    for line in script.splitlines():
        assert allowed.match(line), line
