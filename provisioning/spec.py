"""The VmSpec: what the advisor suggests and what the rest of the system provisions.

Its JSON form is a public contract (see README, "VmSpec JSON"); fields are only ever added.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Gpu(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(min_length=1, max_length=40)
    count: int = Field(ge=1, le=16)


class Cost(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    usd_per_hour: float = Field(ge=0)
    usd_total: float | None = Field(default=None, ge=0)


class VmSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
    machine_type: str = Field(min_length=1, max_length=40)
    vcpus: int = Field(ge=1, le=416)
    memory_gb: float = Field(gt=0, le=12000)
    gpu: Gpu | None = None
    os_image: str = Field(min_length=1, max_length=63)
    os_family: Literal["linux", "windows"] = "linux"
    disk_gb: int = Field(ge=10, le=65536)
    disk_type: str = "pd-balanced"
    region: str = Field(min_length=1, max_length=40)
    zone: str | None = None
    spot: bool = False
    packages: tuple[str, ...] = ()
    ttl_hours: float | None = Field(default=None, gt=0, le=24 * 90)
    cost: Cost
    rationale: str = Field(default="", max_length=500)
    source: Literal["rules", "llm", "modal"] = "rules"
