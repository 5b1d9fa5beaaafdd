"""The allow-list of package recipes: the only things a VM's startup script may install.

Names here are the canonical recipe names of the VmSpec. What words map to them is the
advisor's business; what script installs them is `provisioning.startup`'s. Nothing else, and
never request or model text, goes into a startup script.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OsFamily = Literal["linux", "windows"]


@dataclass(frozen=True, slots=True)
class Recipe:
    name: str
    label: str  # how people and the card name it
    min_vcpus: float  # what a VM needs to run it comfortably
    min_memory_gb: float
    requires: tuple[str, ...] = ()
    os_families: tuple[OsFamily, ...] = ("linux",)
    needs_gpu: bool = False  # pointless, or failing, on a VM without one


# Table order is install order: runtimes, frameworks, data stores, tools, ML.
RECIPES: tuple[Recipe, ...] = (
    Recipe("python3", "Python", 1, 1),
    Recipe("nodejs", "Node.js", 1, 2),
    Recipe("java", "Java", 2, 4),
    Recipe("golang", "Go", 1, 2),
    Recipe("ruby", "Ruby", 1, 2),
    Recipe("php", "PHP", 1, 1),
    Recipe("django", "Django", 1, 2, ("python3",)),
    Recipe("flask", "Flask", 1, 2, ("python3",)),
    Recipe("fastapi", "FastAPI", 1, 2, ("python3",)),
    Recipe("rails", "Rails", 1, 2, ("ruby",)),
    Recipe("postgresql", "PostgreSQL", 2, 4),
    Recipe("mysql", "MySQL", 2, 4),
    Recipe("mongodb", "MongoDB", 2, 4),
    Recipe("redis", "Redis", 1, 2),
    Recipe("elasticsearch", "Elasticsearch", 2, 8),
    Recipe("rabbitmq", "RabbitMQ", 1, 2),
    Recipe("docker", "Docker", 1, 2),
    Recipe("nginx", "nginx", 1, 1),
    Recipe("apache2", "Apache", 1, 1),
    Recipe("kubectl", "kubectl", 1, 1),
    Recipe("jenkins", "Jenkins", 2, 4, ("java",)),
    Recipe("jupyter", "Jupyter", 2, 8, ("python3",)),
    Recipe("cuda", "CUDA", 1, 2, needs_gpu=True),
    Recipe("pytorch", "PyTorch", 4, 12, ("python3",)),
    Recipe("tensorflow", "TensorFlow", 4, 12, ("python3",)),
)
RECIPES_BY_NAME = {r.name: r for r in RECIPES}


class UnknownRecipe(ValueError):
    pass


def with_requirements(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The recipes and what they require, in install order; unknown names are refused."""
    unknown = [n for n in names if n not in RECIPES_BY_NAME]
    if unknown:
        raise UnknownRecipe(f"not on the recipe allow-list: {', '.join(sorted(unknown))}")
    wanted = set(names)
    for name in names:
        wanted.update(RECIPES_BY_NAME[name].requires)
    return tuple(r.name for r in RECIPES if r.name in wanted)
