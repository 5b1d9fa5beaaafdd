"""The rules advisor: reads a plain-language request into a VmSpec with tables and regexes.

Reading happens in two pure steps so either can be extended or reused on its own:

- `RulesAdvisor.read(text) -> Wants`: what the text asks for, as catalog names and numbers.
  Each extractor consumes (masks) the words it understood, so later ones can't read them twice.
- `RulesAdvisor.plan(wants) -> VmSpec`: sizes, fits and prices that against the catalog.

Request text is never copied into the spec: names come from the recipe table, everything else from
the catalog or from parsed numbers.
"""

from __future__ import annotations

import math
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bot.advisor import AdvisorError
from provisioning.catalog import (
    Catalog,
    CatalogError,
    MachineType,
    cheapest_fit,
    price_vm,
)
from provisioning.spec import Gpu, VmSpec

# -- vocabulary ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipe:
    """An allow-listed package recipe and what a VM needs to run it comfortably."""

    name: str  # canonical recipe name; the startup-script builder installs by this name
    label: str  # how the rationale names it
    aliases: str  # regex alternation, matched as whole words in lower-case text
    min_vcpus: float
    min_memory_gb: float
    requires: tuple[str, ...] = ()
    name_stem: str = "dev-box"  # VM name prefix when this is the main workload
    rank: int = 0  # the highest-ranked recipe asked for is the main workload


# Table order is install order: runtimes, frameworks, data stores, tools, ML.
RECIPES: tuple[Recipe, ...] = (
    Recipe("python3", "Python", r"python\s*3?(?:\.[0-9]+)*|py3", 1, 1, (), "python-dev", 1),
    Recipe("nodejs", "Node.js", r"node\.?js|npm|react|next\.?js", 1, 2, (), "node-dev", 2),
    Recipe("java", "Java", r"java|jdk|openjdk|spring\s*boot|maven|gradle", 2, 4, (), "java-dev", 2),
    Recipe("golang", "Go", r"golang|go\s*lang", 1, 2, (), "go-dev", 2),
    Recipe("django", "Django", r"django", 1, 2, ("python3",), "django-dev", 3),
    Recipe("flask", "Flask", r"flask", 1, 2, ("python3",), "flask-dev", 3),
    Recipe("fastapi", "FastAPI", r"fast\s*api", 1, 2, ("python3",), "fastapi-dev", 3),
    Recipe("postgresql", "PostgreSQL", r"postgres(?:ql)?|psql|pgsql", 2, 4, (), "postgres-db", 2),
    Recipe("mysql", "MySQL", r"mysql", 2, 4, (), "mysql-db", 2),
    Recipe("mongodb", "MongoDB", r"mongo(?:db)?", 2, 4, (), "mongo-db", 2),
    Recipe("redis", "Redis", r"redis", 1, 2, (), "redis-cache", 1),
    Recipe("elasticsearch", "Elasticsearch", r"elastic\s*search", 2, 8, (), "search-node", 2),
    Recipe("docker", "Docker", r"docker(?:[\s-]*compose)?", 1, 2, (), "docker-host", 1),
    Recipe("nginx", "nginx", r"nginx", 1, 1, (), "nginx-web", 1),
    Recipe("jupyter", "Jupyter", r"jupyter(?:\s*(?:lab|hub|notebooks?))?", 2, 8, ("python3",),
           "jupyter-lab", 3),
    Recipe("pytorch", "PyTorch", r"py\s*torch|torch", 4, 12, ("python3",), "pytorch-train", 4),
    Recipe("tensorflow", "TensorFlow", r"tensor\s*flow|keras", 4, 12, ("python3",),
           "tensorflow-train", 4),
)  # fmt: skip
RECIPES_BY_NAME = {r.name: r for r in RECIPES}


@dataclass(frozen=True, slots=True)
class GpuModel:
    gpu_type: str  # catalog GPU type
    label: str
    aliases: str


# Longer names first: "a100 80gb" must win over "a100".
GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel("nvidia-a100-80gb", "NVIDIA A100 80GB", r"a100[\s-]*80\s*g(?:i?b)?"),
    GpuModel("nvidia-tesla-a100", "NVIDIA A100 40GB", r"a100(?:[\s-]*40\s*g(?:i?b)?)?"),
    GpuModel("nvidia-h100-80gb", "NVIDIA H100 80GB", r"h100(?:[\s-]*80\s*g(?:i?b)?)?"),
    GpuModel("nvidia-l4", "NVIDIA L4", r"l4"),
    GpuModel("nvidia-tesla-t4", "NVIDIA T4", r"t4"),
)
GPU_BY_TYPE = {g.gpu_type: g for g in GPU_MODELS}
DEFAULT_GPU = "nvidia-l4"  # bundled with g2, which is offered in most regions
UNAVAILABLE_GPUS = r"v100|p100|p4|k80|a10g?|h200|b200|l40s?"


@dataclass(frozen=True, slots=True)
class SizeProfile:
    name: str
    words: str
    vcpus: float
    memory_gb: float


# Earliest mention wins; at the same position the earlier row wins ("extra large" over "large").
SIZES: tuple[SizeProfile, ...] = (
    SizeProfile("tiny", r"tiny|micro|smallest|minimal", 0.25, 1),
    SizeProfile("small", r"small|little", 1, 2),
    SizeProfile("medium", r"medium|mid[\s-]*sized?|moderate", 2, 8),
    SizeProfile(
        "xlarge", r"x+-?large|x+l|extra[\s-]*large|very\s+(?:large|big)|beefy|powerful", 8, 32
    ),
    SizeProfile("huge", r"huge|massive|enormous|monster|giant", 16, 64),
    SizeProfile("large", r"large|big|beefier", 4, 16),
)
DEFAULT_SIZE = SizeProfile("default", "", 1, 2)
# With only a vCPU count, ask for the standard shape's memory (n1-standard has 3.75 GB per vCPU,
# e2/n2-standard 4) so "4 cpus" gets a standard type rather than a memory-starved highcpu one.
DEFAULT_GB_PER_VCPU = 3.75


@dataclass(frozen=True, slots=True)
class OsRule:
    label: str
    names: str  # regex alternation
    versions: tuple[tuple[str, str], ...]  # (version as typed, image family)
    default: str  # image family when no version is given


UBUNTU_2204, UBUNTU_2404 = "ubuntu-2204-lts", "ubuntu-2404-lts-amd64"
DEBIAN_12, ROCKY_9 = "debian-12", "rocky-linux-9"
WINDOWS_2022, WINDOWS_2019 = "windows-2022", "windows-2019"
DEFAULT_IMAGE = UBUNTU_2204

OS_RULES: tuple[OsRule, ...] = (
    OsRule(
        "Ubuntu",
        r"ubuntu(?:\s+(?:linux|server))?",
        (
            ("22.04", UBUNTU_2204), ("22", UBUNTU_2204), ("2204", UBUNTU_2204),
            ("24.04", UBUNTU_2404), ("24", UBUNTU_2404), ("2404", UBUNTU_2404),
        ),
        UBUNTU_2204,
    ),
    OsRule("Ubuntu", r"jammy(?:\s+jellyfish)?", (), UBUNTU_2204),
    OsRule("Ubuntu", r"noble(?:\s+numbat)?", (), UBUNTU_2404),
    OsRule("Debian", r"debian(?:\s+linux)?", (("12", DEBIAN_12),), DEBIAN_12),
    OsRule("Debian", r"bookworm", (), DEBIAN_12),
    OsRule("Rocky Linux", r"rocky(?:\s+linux)?", (("9", ROCKY_9),), ROCKY_9),
    OsRule(
        "Windows Server",
        r"windows(?:\s+server)?|win\s*server",
        (
            ("2022", WINDOWS_2022), ("22", WINDOWS_2022),
            ("2019", WINDOWS_2019), ("19", WINDOWS_2019),
        ),
        WINDOWS_2022,
    ),
)  # fmt: skip
# OS names people ask for that the image catalog doesn't have: label -> regex.
UNAVAILABLE_OS: dict[str, str] = {
    "CentOS": r"centos", "RHEL": r"rhel|red\s*hat", "Fedora": r"fedora",
    "AlmaLinux": r"alma\s*linux", "SUSE": r"open\s*suse|suse|sles",
    "Amazon Linux": r"amazon\s*linux", "FreeBSD": r"freebsd",
}  # fmt: skip

# Places people name, beyond the locations in the catalog's region list (which are added too).
REGION_ALIASES: dict[str, str] = {
    "uk": "europe-west2", "united kingdom": "europe-west2", "england": "europe-west2",
    "britain": "europe-west2", "germany": "europe-west3", "france": "europe-west9",
    "italy": "europe-west8", "spain": "europe-southwest1", "switzerland": "europe-west6",
    "holland": "europe-west4", "poland": "europe-central2", "sweden": "europe-north2",
    "europe": "europe-west1", "eu": "europe-west1",
    "japan": "asia-northeast1", "korea": "asia-northeast3", "india": "asia-south1",
    "indonesia": "asia-southeast2", "thailand": "asia-southeast3", "asia": "asia-southeast1",
    "australia": "australia-southeast1",
    "canada": "northamerica-northeast1", "brazil": "southamerica-east1",
    "chile": "southamerica-west1", "south america": "southamerica-east1",
    "israel": "me-west1", "qatar": "me-central1", "saudi arabia": "me-central2",
    "south africa": "africa-south1", "africa": "africa-south1",
    "usa": "us-central1", "u.s.": "us-central1", "u.s.a.": "us-central1",
    "united states": "us-central1", "north america": "us-central1",
    "east coast": "us-east4", "west coast": "us-west1", "virginia": "us-east4",
    "california": "us-west2", "texas": "us-south1", "ohio": "us-east5", "utah": "us-west3",
    "nevada": "us-west4",
}  # fmt: skip

DEFAULT_DISK_GB = 30
DEFAULT_DISK_TYPE = "pd-balanced"
MAX_TEXT_CHARS = 4000
MAX_TTL_HOURS = 24 * 90
EXAMPLE = "`/vm a Django dev server with Postgres and Redis for 2 hours`"

# -- regexes (compiled once) ---------------------------------------------------------------

_B = r"(?<![a-z0-9])"  # word start
_E = r"(?![a-z0-9])"  # word end
_DIGITS = r"[0-9]+(?:\.[0-9]+)?"
_NUMBER_WORDS: dict[str, float] = {
    "a couple of": 2, "a couple": 2, "couple of": 2, "a few": 3, "few": 3,
    "half an": 0.5, "half a": 0.5, "a": 1, "an": 1, "one": 1, "single": 1, "two": 2,
    "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "sixteen": 16, "twenty": 20, "thirty": 30,
    "thirty-two": 32, "forty-eight": 48, "sixty-four": 64, "ninety-six": 96,
}  # fmt: skip
_WORDS = "|".join(
    re.escape(w).replace(r"\ ", r"\s+") for w in sorted(_NUMBER_WORDS, key=len, reverse=True)
)
# A digit amount may touch its unit ("2h"); a word amount needs a space ("an hour", not "am").
_AMOUNT = rf"(?:(?P<n>{_DIGITS})\s*|(?P<w>{_WORDS})\s+)"
_SIZE_UNIT = r"(?:terabytes?|tib|tb|gigabytes?|gigs?|gib|gb|g|megabytes?|mib|mb)"
_UNIT_WORD = (
    r"(?:v?cpus?|vcores?|cores?|gpus?|terabytes?|tib|tb|gigabytes?|gigs?|gib|gb|g|mb|"
    r"minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w|months?|x)"
)

_MACHINE_TYPE_RE = re.compile(
    rf"{_B}[a-z][0-9][a-z]?-(?:standard|highmem|highcpu|highgpu|ultragpu|megagpu|ultramem|"
    rf"megamem|hypermem|micro|small|medium|custom)(?:-[0-9]+g?)?(?:-(?:lssd|metal))?{_E}"
)
_REGION_ID_RE = re.compile(
    rf"{_B}(?P<id>(?:us|europe|asia|australia|northamerica|southamerica|me|africa)-[a-z]+[0-9]{{1,2}})"
    rf"(?:-[a-z])?{_E}"
)
_GPU_MODEL_RE = re.compile(
    rf"{_B}(?:{_AMOUNT}[x×*]?\s*)?(?:nvidia\s+)?(?:tesla\s+)?"
    rf"(?P<model>{'|'.join(f'(?P<g{i}>{g.aliases})' for i, g in enumerate(GPU_MODELS))})s?{_E}"
    rf"(?:\s*(?:gpus?|cards?){_E})?(?:\s*[x×]\s*(?P<times>[0-9]{{1,3}}){_E})?"
)
_GPU_UNAVAILABLE_RE = re.compile(rf"{_B}(?:nvidia\s+)?(?:tesla\s+)?(?:{UNAVAILABLE_GPUS})s?{_E}")
_GPU_GENERIC_RE = re.compile(rf"{_B}(?:{_AMOUNT}[x×]?\s*)?(?:nvidia\s+)?gpus?{_E}")
_GPU_OFF_RE = re.compile(rf"{_B}(?:gpu[\s-]*(?:free|less)|cpu[\s-]*only){_E}")
_OS_RES = tuple(
    re.compile(
        rf"{_B}(?:{rule.names})(?:[\s-]*v?(?P<ver>[0-9]+(?:\.[0-9]+)?)(?![0-9.])"
        rf"(?!\s*{_UNIT_WORD}{_E}))?(?:\s+lts)?{_E}"
    )
    for rule in OS_RULES
)
_OS_UNAVAILABLE_RES = tuple(
    (label, re.compile(rf"{_B}(?:{words}){_E}")) for label, words in UNAVAILABLE_OS.items()
)
_MEMORY_RES = (
    re.compile(rf"{_B}{_AMOUNT}(?P<u>{_SIZE_UNIT})?\s*(?:of\s+)?(?:ram|memory|mem){_E}"),
    re.compile(
        rf"{_B}(?:ram|memory|mem)\s*(?:[:=]|of|with)?\s*(?P<n>{_DIGITS})\s*(?P<u>{_SIZE_UNIT}){_E}"
    ),
)
_DISK_NOUN = r"(?:disks?|storage|drives?|space|ssds?|hdds?|volumes?)"
_DISK_RES = (
    re.compile(
        rf"{_B}{_AMOUNT}(?P<u>{_SIZE_UNIT})\s*(?:of\s+)?"
        rf"(?:(?:ssd|hdd|nvme|persistent|boot|balanced|standard|local|free|extra)\s+)*{_DISK_NOUN}{_E}"
    ),
    re.compile(
        rf"{_B}(?:disk|storage|drive)(?:\s*size)?\s*(?:[:=]|of|with)?\s*(?P<n>{_DIGITS})\s*"
        rf"(?P<u>{_SIZE_UNIT}){_E}"
    ),
)
_BARE_SIZE_RE = re.compile(
    rf"{_B}(?P<n>{_DIGITS})\s*(?P<u>terabytes?|tib|tb|gigabytes?|gigs?|gib|gb){_E}"
)
_DISK_TYPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"{_B}(?:pd-ssd|ssds?|nvme){_E}"), "pd-ssd"),
    (re.compile(rf"{_B}(?:pd-standard|hdds?|spinning\s+disks?|magnetic){_E}"), "pd-standard"),
    (re.compile(rf"{_B}(?:pd-balanced|balanced\s+disks?){_E}"), "pd-balanced"),
)
_VCPU_RES = (
    re.compile(
        rf"{_B}{_AMOUNT}(?:x\s*)?-?\s*(?:cpu\s*cores?|v\s*cpus?|vcores?|cpus?|cores?|processors?"
        rf"|threads?){_E}"
    ),
    re.compile(rf"{_B}(?:v?cpus?|vcores?|cores?)\s*[:=]\s*(?P<n>{_DIGITS}){_E}"),
)
_VCPU_WORD_RE = re.compile(rf"{_B}(?P<k>single|dual|quad|hexa|octa)[\s-]*core{_E}")
_VCPU_WORDS = {"single": 1, "dual": 2, "quad": 4, "hexa": 6, "octa": 8}
_DURATION_RE = re.compile(
    rf"{_B}(?:(?P<n>{_DIGITS})\s*-?\s*(?P<u>minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|wks?|w"
    rf"|months?)|(?P<w>{_WORDS})\s+(?P<wu>minutes?|hours?|days?|weeks?|months?))"
    rf"(?P<half>\s+and\s+a\s+half)?{_E}"
)
_DURATION_HM_RE = re.compile(rf"{_B}(?P<h>[0-9]{{1,4}})\s*h(?P<m>[0-9]{{2}})m?{_E}")
_DURATION_PHRASES = (
    (re.compile(rf"{_B}overnight{_E}"), 12.0),
    (re.compile(rf"{_B}all\s+day{_E}"), 8.0),
)
_NO_EXPIRY_RE = re.compile(
    rf"{_B}(?:indefinitely|permanent(?:ly)?|forever|no\s+(?:ttl|expiry|expiration|time\s*limit)"
    rf"|never\s+expires?|until\s+(?:i|we)\s+(?:delete|destroy|remove)\s+it){_E}"
)
_JOIN_RE = re.compile(r"\s*(?:,|and)?\s*")
_SPOT_RE = re.compile(rf"{_B}(?:spot|preemptible|pre-emptible|interruptible){_E}")
_ON_DEMAND_RE = re.compile(rf"{_B}(?:on[\s-]*demand|non[\s-]*preemptible|regular\s+pricing){_E}")
_SIZE_RE = re.compile(
    _B + "(?:" + "|".join(f"(?P<s{i}>{s.words})" for i, s in enumerate(SIZES)) + ")" + _E
)
_RECIPE_RES = tuple((r, re.compile(rf"{_B}(?:{r.aliases}){_E}")) for r in RECIPES)
# A mention right after "no", "without", "don't need a", "not", ... (or in a list after one:
# "without postgres or redis") is a request to leave it out.
_NEGATION_RE = re.compile(
    r"(?:\bno|\bnot|n't|\bdont|\bwithout|\bw/o|\bnon|\bnor|\bzero|\bskip|\bexcept)[\s-]+"
    r"(?:(?:a|an|any|the|need|needs|want|use|using|require|install|with|for|more|in)\s+){0,3}"
    r"(?:[a-z0-9.+-]+\s+(?:or|nor)\s+){0,3}$"
)
_NEGATION_WINDOW = 60


# -- what the text asks for ----------------------------------------------------------------


@dataclass
class Wants:
    """What a request asks for, already mapped to catalog names and numbers (no free text)."""

    machine_type: str | None = None
    vcpus: float | None = None
    memory_gb: float | None = None
    disk_gb: float | None = None
    disk_type: str | None = None
    gpu_type: str | None = None
    gpu_count: int | None = None
    gpu_generic: bool = False  # "a GPU" without a model
    gpu_off: bool = False  # "no GPU", "cpu only"
    image_family: str | None = None
    region: str | None = None
    ttl_given: bool = False
    ttl_hours: float | None = None
    spot: bool | None = None
    size: SizeProfile | None = None
    recipes: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return self == Wants()


class _Scan:
    """Lower-case text plus a masked copy from which understood spans are blanked out."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._masked = text

    def take(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        """All matches in the not-yet-understood text; their spans become understood."""
        found = list(pattern.finditer(self._masked))
        for m in found:
            start, end = m.span()
            self._masked = self._masked[:start] + " " * (end - start) + self._masked[end:]
        return found

    def peek(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        return list(pattern.finditer(self._masked))

    def negated(self, m: re.Match[str]) -> bool:
        window = self.text[max(0, m.start() - _NEGATION_WINDOW) : m.start()]
        return _NEGATION_RE.search(window) is not None

    def kept(self, matches: list[re.Match[str]]) -> list[re.Match[str]]:
        return [m for m in matches if not self.negated(m)]


def normalize(text: str) -> str:
    """Lower-case, accents folded ("São Paulo" → "sao paulo"), so tables can be plain ASCII."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


def _number(m: re.Match[str], digits: str = "n", words: str = "w") -> float:
    token = m.group(digits) if digits in m.re.groupindex else None
    if token:
        if len(token.split(".")[0]) > 9:  # absurd, and too long for int() anyway
            return math.inf
        return float(token)
    word = m.group(words) if words in m.re.groupindex else None
    return _NUMBER_WORDS[" ".join(word.split())] if word else 1.0


def _gigabytes(amount: float, unit: str | None) -> float:
    if unit and unit.startswith("t"):
        return amount * 1024
    if unit and unit.startswith("m"):
        return amount / 1024
    return amount


def _unit_hours(unit: str) -> float:
    if unit.startswith("mo"):
        return 30 * 24
    return {"m": 1 / 60, "h": 1, "d": 24, "w": 7 * 24}[unit[0]]


# -- the advisor ---------------------------------------------------------------------------


class RulesAdvisor:
    """Table-driven advisor: no model, no network, same answer for the same text."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        default_region: str = "us-central1",
        default_ttl_hours: float | None = 4.0,
        name_suffix: Callable[[], str] | None = None,
    ) -> None:
        catalog.region_location(default_region)  # fail fast on a bad default
        self._catalog = catalog
        self._default_region = default_region
        self._default_ttl_hours = default_ttl_hours
        self._name_suffix = name_suffix or (lambda: secrets.token_hex(2))
        places = dict(REGION_ALIASES)
        places.update({normalize(r.location): r.id for r in catalog.regions})
        self._places = {k: v for k, v in places.items() if catalog.has_region(v)}
        alternation = "|".join(
            re.escape(p).replace(r"\ ", r"\s+") for p in sorted(self._places, key=len, reverse=True)
        )
        self._place_re = re.compile(rf"{_B}(?:{alternation}){_E}")

    def suggest(self, text: str) -> VmSpec:
        if not text or not text.strip():
            raise AdvisorError(f"Tell me what you need, e.g. {EXAMPLE}.")
        if len(text) > MAX_TEXT_CHARS:
            raise AdvisorError("That request is too long; describe the VM in a sentence or two.")
        try:
            return self.plan(self.read(text))
        except CatalogError as e:
            raise AdvisorError(str(e)) from e

    # -- reading ---------------------------------------------------------------------------

    def read(self, text: str) -> Wants:
        """Parse `text` into Wants. Raises AdvisorError for asks the catalog can't have."""
        scan = _Scan(normalize(text))
        wants = Wants()
        for extract in (
            self._machine_type,
            self._region,
            _gpu,
            self._os,
            _memory,
            _disk,
            _vcpus,
            _duration,
            _bare_sizes,
            _disk_type,
            _spot,
            _size,
            _recipes,
        ):
            extract(scan, wants)
        return wants

    def _machine_type(self, scan: _Scan, wants: Wants) -> None:
        for m in scan.kept(scan.take(_MACHINE_TYPE_RE)):
            name = m.group(0)
            self._catalog.machine_type(name)  # raises a CatalogError naming alternatives
            wants.machine_type = wants.machine_type or name

    def _os(self, scan: _Scan, wants: Wants) -> None:
        _os(scan, wants, ", ".join(i.label for i in self._catalog.images))

    def _region(self, scan: _Scan, wants: Wants) -> None:
        found: list[tuple[int, str]] = []
        for m in scan.kept(scan.take(_REGION_ID_RE)):
            self._catalog.region_location(m.group("id"))  # raises for unknown regions
            found.append((m.start(), m.group("id")))
        for m in scan.kept(scan.take(self._place_re)):
            found.append((m.start(), self._places[" ".join(m.group(0).split())]))
        if found:
            wants.region = min(found)[1]

    # -- planning --------------------------------------------------------------------------

    def plan(self, wants: Wants) -> VmSpec:
        """Size, fit and price Wants into a VmSpec. Raises AdvisorError or CatalogError."""
        catalog = self._catalog
        region = wants.region or self._default_region
        image = catalog.image(wants.image_family or DEFAULT_IMAGE)
        windows = image.os_family == "windows"
        recipes = _with_requirements(wants.recipes)
        if windows and recipes:
            raise AdvisorError(
                "Package recipes install on Linux only; ask for Ubuntu, Debian or Rocky Linux, "
                "or leave out " + ", ".join(recipes) + "."
            )
        spot = bool(wants.spot)

        if wants.machine_type:
            mt = catalog.machine_type(wants.machine_type)
            gpu = self._gpu_for_named_type(mt, wants)
            _check_named_type_fits(mt, wants)
            catalog.machine_price(mt.name, region)  # raises naming where it is offered
            choice = f"the machine type you named ({mt.name})"
        else:
            vcpus, memory_gb = _minimums(wants, recipes)
            gpu_type = wants.gpu_type or (DEFAULT_GPU if _gpu_wanted(wants) else None)
            gpu_count = (wants.gpu_count or 1) if gpu_type else 0
            mt = cheapest_fit(
                catalog,
                vcpus=vcpus,
                memory_gb=memory_gb,
                region=region,
                gpu_type=gpu_type,
                gpu_count=gpu_count,
                spot=spot,
                windows=windows,
            )
            if gpu_type is None:
                gpu = None
                choice = f"smallest general-purpose type that fits ({mt.name})"
            else:
                gpu = Gpu(type=gpu_type, count=mt.gpu_count if mt.has_gpu else gpu_count)
                choice = f"cheapest type with that GPU that fits ({mt.name})"

        disk_gb = _disk_gb(wants.disk_gb, image.min_disk_gb, image.label)
        disk_type = wants.disk_type or DEFAULT_DISK_TYPE
        ttl_hours = _ttl(wants, self._default_ttl_hours)
        cost = price_vm(
            catalog, mt.name, region, disk_gb, disk_type, spot, image.os_family, ttl_hours, gpu=gpu
        )
        if wants.is_empty():
            rationale = f"No specifics given → small general-purpose default ({mt.name})"
        else:
            rationale = f"{_subject(wants, recipes, gpu, image.label)} → {choice}"
        if spot:
            rationale += ", at spot prices"
        return VmSpec(
            name=self._name(recipes, gpu, windows),
            machine_type=mt.name,
            vcpus=max(1, math.ceil(mt.vcpus)),
            memory_gb=mt.memory_gb,
            gpu=gpu,
            os_image=image.family,
            os_family=image.os_family,
            disk_gb=disk_gb,
            disk_type=disk_type,
            region=region,
            zone=None,
            spot=spot,
            packages=recipes,
            ttl_hours=ttl_hours,
            cost=cost,
            rationale=rationale,
            source="rules",
        )

    def _gpu_for_named_type(self, mt: MachineType, wants: Wants) -> Gpu | None:
        if mt.has_gpu and mt.gpu_type:
            asked = wants.gpu_type
            if wants.gpu_off and not asked:
                raise AdvisorError(f"{mt.name} comes with a GPU; name a type without one.")
            if asked and (asked != mt.gpu_type or (wants.gpu_count or 1) > mt.gpu_count):
                raise AdvisorError(
                    f"{mt.name} comes with {mt.gpu_count}× {_gpu_label(mt.gpu_type)}, not "
                    f"{wants.gpu_count or 1}× {_gpu_label(asked)}; drop one of the two."
                )
            return Gpu(type=mt.gpu_type, count=mt.gpu_count)
        if not _gpu_wanted(wants):
            return None
        attachable = [g for g in self._catalog.attachable_gpus if g.machine_family == mt.family]
        gpu_type = wants.gpu_type or (attachable[0].gpu_type if attachable else DEFAULT_GPU)
        if not any(g.gpu_type == gpu_type for g in attachable):
            raise AdvisorError(
                f"{_gpu_label(gpu_type)} can't be added to {mt.name}; drop the machine type "
                "and I'll pick one that has it."
            )
        return Gpu(type=gpu_type, count=wants.gpu_count or 1)

    def _name(self, recipes: tuple[str, ...], gpu: Gpu | None, windows: bool) -> str:
        if recipes:
            main = max(
                (RECIPES_BY_NAME[r] for r in recipes), key=lambda r: (r.rank, -RECIPES.index(r))
            )
            stem = main.name_stem
        else:
            stem = "gpu-box" if gpu else "windows-box" if windows else "dev-box"
        suffix = re.sub(r"[^a-z0-9]", "", self._name_suffix().lower())[:8] or "0"
        return f"{stem}-{suffix}"


# -- extractors (scan, wants) -> None ------------------------------------------------------


def _gpu(scan: _Scan, wants: Wants) -> None:
    for m in scan.kept(scan.take(_GPU_UNAVAILABLE_RE)):
        available = ", ".join(g.label for g in GPU_MODELS)
        raise AdvisorError(
            f"{m.group(0).upper()} GPUs aren't in the catalog; choose one of {available}."
        )
    for m in scan.take(_GPU_MODEL_RE):
        if scan.negated(m):
            continue
        model = next(g for i, g in enumerate(GPU_MODELS) if m.group(f"g{i}"))
        count = _number(m) if m.group("n") or m.group("w") else float(m.group("times") or 1)
        if wants.gpu_type is None:
            wants.gpu_type = model.gpu_type
            if m.group("n") or m.group("w") or m.group("times"):
                wants.gpu_count = _gpu_count(count)
    for m in scan.take(_GPU_GENERIC_RE):
        if scan.negated(m):
            wants.gpu_off = True
            continue
        count = _number(m)
        if count == 0:
            wants.gpu_off = True
        elif m.group("n") or m.group("w"):
            wants.gpu_count = wants.gpu_count or _gpu_count(count)
        wants.gpu_generic = wants.gpu_generic or count > 0
    if scan.kept(scan.take(_GPU_OFF_RE)):
        wants.gpu_off = True


def _gpu_count(count: float) -> int:
    if not 1 <= count <= 16 or count != int(count):
        raise AdvisorError("Ask for a whole number of GPUs between 1 and 16.")
    return int(count)


def _os(scan: _Scan, wants: Wants, offered: str) -> None:
    for label, pattern in _OS_UNAVAILABLE_RES:
        if scan.kept(scan.take(pattern)):
            raise AdvisorError(f"{label} isn't in the image catalog; choose one of {offered}.")
    found: list[tuple[int, str]] = []
    for rule, pattern in zip(OS_RULES, _OS_RES, strict=True):
        for m in scan.kept(scan.take(pattern)):
            version = m.group("ver")
            family = rule.default if version is None else dict(rule.versions).get(version)
            if family is None:
                raise AdvisorError(
                    f"{rule.label} {version} isn't in the image catalog; choose one of {offered}."
                )
            found.append((m.start(), family))
    if found:
        wants.image_family = min(found)[1]


def _memory(scan: _Scan, wants: Wants) -> None:
    for pattern in _MEMORY_RES:
        for m in scan.kept(scan.take(pattern)):
            if wants.memory_gb is None:
                wants.memory_gb = _gigabytes(_number(m), m.group("u"))


def _disk(scan: _Scan, wants: Wants) -> None:
    for pattern in _DISK_RES:
        for m in scan.kept(scan.take(pattern)):
            if wants.disk_gb is None:
                wants.disk_gb = _gigabytes(_number(m), m.group("u"))


def _vcpus(scan: _Scan, wants: Wants) -> None:
    for pattern in _VCPU_RES:
        for m in scan.kept(scan.take(pattern)):
            if wants.vcpus is None:
                wants.vcpus = _number(m)
    for m in scan.kept(scan.take(_VCPU_WORD_RE)):
        if wants.vcpus is None:
            wants.vcpus = _VCPU_WORDS[m.group("k")]


def _duration(scan: _Scan, wants: Wants) -> None:
    if scan.kept(scan.take(_NO_EXPIRY_RE)):
        wants.ttl_given, wants.ttl_hours = True, None
        return
    spans: list[tuple[int, int, float]] = []
    for m in scan.take(_DURATION_HM_RE):
        spans.append((m.start(), m.end(), float(m.group("h")) + float(m.group("m")) / 60))
    for m in scan.take(_DURATION_RE):
        unit = m.group("u") or m.group("wu")
        amount = _number(m) + (0.5 if m.group("half") else 0)
        spans.append((m.start(), m.end(), amount * _unit_hours(unit)))
    for pattern, hours in _DURATION_PHRASES:
        spans.extend((m.start(), m.end(), hours) for m in scan.take(pattern))
    if not spans or wants.ttl_given:
        return
    # "1 hour and 30 minutes": adjacent amounts add up; the first such group is the TTL.
    spans.sort()
    total, end = spans[0][2], spans[0][1]
    for start, stop, hours in spans[1:]:
        if not _JOIN_RE.fullmatch(scan.text[end:start]):
            break
        total, end = total + hours, stop
    wants.ttl_given, wants.ttl_hours = True, total


def _bare_sizes(scan: _Scan, wants: Wants) -> None:
    # Without "ram" or "disk": terabytes and >= 100 GB are disk, smaller amounts are memory.
    for m in scan.kept(scan.take(_BARE_SIZE_RE)):
        gb = _gigabytes(_number(m), m.group("u"))
        if m.group("u").startswith("t") or gb >= 100:
            wants.disk_gb = wants.disk_gb if wants.disk_gb is not None else gb
        elif wants.memory_gb is None:
            wants.memory_gb = gb


def _disk_type(scan: _Scan, wants: Wants) -> None:
    found = [
        (m.start(), disk_type)
        for pattern, disk_type in _DISK_TYPES
        for m in pattern.finditer(scan.text)
        if not scan.negated(m)
    ]
    if found:
        wants.disk_type = min(found)[1]


def _spot(scan: _Scan, wants: Wants) -> None:
    if scan.take(_ON_DEMAND_RE):
        wants.spot = False
        return
    for m in scan.take(_SPOT_RE):
        wants.spot = not scan.negated(m) if wants.spot is None else wants.spot


def _size(scan: _Scan, wants: Wants) -> None:
    for m in scan.kept(scan.take(_SIZE_RE)):
        wants.size = next(s for i, s in enumerate(SIZES) if m.group(f"s{i}"))
        return


def _recipes(scan: _Scan, wants: Wants) -> None:
    for recipe, pattern in _RECIPE_RES:
        if scan.kept(scan.take(pattern)) and recipe.name not in wants.recipes:
            wants.recipes.append(recipe.name)


# -- planning helpers ----------------------------------------------------------------------


def _with_requirements(names: list[str]) -> tuple[str, ...]:
    wanted = set(names)
    for name in names:
        wanted.update(RECIPES_BY_NAME[name].requires)
    return tuple(r.name for r in RECIPES if r.name in wanted)


def _gpu_wanted(wants: Wants) -> bool:
    return wants.gpu_type is not None or (wants.gpu_generic and not wants.gpu_off)


def _minimums(wants: Wants, recipes: tuple[str, ...]) -> tuple[float, float]:
    """Minimum vCPUs and memory: what was asked explicitly, else the size and workload need."""
    base = wants.size or DEFAULT_SIZE
    needs = [RECIPES_BY_NAME[r] for r in recipes]
    if wants.vcpus is not None:
        if not wants.vcpus > 0:
            raise AdvisorError("Ask for at least 1 vCPU.")
        if math.isinf(wants.vcpus):
            raise AdvisorError(_too_big("many vCPUs"))
        vcpus = wants.vcpus
    else:
        vcpus = max([base.vcpus, *(r.min_vcpus for r in needs)])
    if wants.memory_gb is not None:
        if not wants.memory_gb > 0:
            raise AdvisorError("Ask for at least 1 GB of memory.")
        if math.isinf(wants.memory_gb):
            raise AdvisorError(_too_big("much memory"))
        memory_gb = wants.memory_gb
    else:
        memory_gb = max([base.memory_gb, *(r.min_memory_gb for r in needs)])
        if wants.vcpus is not None:
            memory_gb = max(memory_gb, wants.vcpus * DEFAULT_GB_PER_VCPU)
    return vcpus, memory_gb


def _too_big(what: str) -> str:
    return f"No machine type has that {what}; ask for less, or name a type like n2-standard-64."


def _check_named_type_fits(mt: MachineType, wants: Wants) -> None:
    if wants.vcpus is not None and not math.isclose(wants.vcpus, mt.vcpus):
        raise AdvisorError(
            f"{mt.name} has {mt.vcpus:g} vCPUs, not {wants.vcpus:g}; drop the machine type or "
            "the vCPU count."
        )
    if wants.memory_gb is not None and not math.isclose(wants.memory_gb, mt.memory_gb):
        raise AdvisorError(
            f"{mt.name} has {mt.memory_gb:g} GB of memory, not {wants.memory_gb:g}; drop the "
            "machine type or the memory size."
        )


def _disk_gb(asked: float | None, image_min_gb: int, image_label: str) -> int:
    if asked is None:
        return max(DEFAULT_DISK_GB, image_min_gb)
    if asked > 65536:
        raise AdvisorError("Disks go up to 64 TB (65536 GB); ask for a smaller one.")
    disk_gb = math.ceil(asked)
    floor = max(10, image_min_gb)
    if disk_gb < floor:
        raise AdvisorError(f"{image_label} needs a disk of at least {floor} GB; ask for more.")
    return disk_gb


def _ttl(wants: Wants, default: float | None) -> float | None:
    if not wants.ttl_given:
        return default
    hours = wants.ttl_hours
    if hours is None:
        return None
    if hours > MAX_TTL_HOURS:
        raise AdvisorError("I can keep a VM for at most 90 days; ask for less.")
    if hours < 1 / 60:
        raise AdvisorError("I can't keep a VM for less than a minute; ask for longer.")
    return round(hours, 4)


def _gpu_label(gpu_type: str) -> str:
    model = GPU_BY_TYPE.get(gpu_type)
    return model.label if model else gpu_type


def _subject(wants: Wants, recipes: tuple[str, ...], gpu: Gpu | None, image_label: str) -> str:
    implied = {dep for r in recipes for dep in RECIPES_BY_NAME[r].requires}
    labels = [RECIPES_BY_NAME[r].label for r in recipes if r not in implied]
    if labels:
        head = " + ".join(labels) + " dev box"
    elif image_label.startswith("Windows"):
        head = f"{image_label} box"
    elif wants.size:
        head = f"{wants.size.name.capitalize()} box"
    else:
        head = "Dev box"
    extras = list(_extras(wants, gpu))
    return head + (" with " + ", ".join(extras) if extras else "")


def _extras(wants: Wants, gpu: Gpu | None) -> Iterator[str]:
    if wants.vcpus is not None:
        yield f"{wants.vcpus:g} vCPUs"
    if wants.memory_gb is not None:
        yield f"{wants.memory_gb:g} GB memory"
    if gpu is not None:
        yield f"{gpu.count}× {_gpu_label(gpu.type)}"
