"""The rules advisor: reads a plain-language request into a VmSpec with tables and regexes.

Reading happens in two pure steps so either can be extended or reused on its own:

- `RulesAdvisor.read(text) -> Wants`: what the text asks for, as catalog names and numbers.
  Each extractor consumes (masks) the words it understood, so later ones can't read them twice.
- `RulesAdvisor.plan(wants) -> VmSpec`: sizes, fits and prices that against the catalog.

Request text is never copied into the spec: names come from the recipe table, everything else from
the catalog or from parsed numbers.
"""

from __future__ import annotations

import functools
import math
import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bot.advisor import AdvisorError
from provisioning.catalog import (
    Catalog,
    CatalogError,
    MachineType,
    cheapest_fit,
    price_vm,
)
from provisioning.recipes import RECIPES, RECIPES_BY_NAME, with_requirements
from provisioning.spec import Gpu, VmSpec
from provisioning.validation import InvalidSpec, validate_spec

Source = Literal["rules", "llm"]

# -- vocabulary ----------------------------------------------------------------------------
# Which recipes exist, their labels, sizing and requirements live in provisioning.recipes; the
# advisor only knows which words name them, what a VM running them is called, and which one is
# the main workload.


@dataclass(frozen=True, slots=True)
class RecipeWords:
    aliases: str  # regex alternation, matched as whole words in lower-case text
    recipes: tuple[str, ...]  # canonical recipe names (a stack names several)


RECIPE_WORDS: tuple[RecipeWords, ...] = (
    # Stacks first, so "MEAN stack" is read as a stack before "mean" could be anything else.
    RecipeWords(r"mean(?=\s*(?:stack|app|dev|box|server|project))|mean\s*js|mern(?:\s*stack)?"
                r"|mevn(?:\s*stack)?", ("mongodb", "nodejs")),
    RecipeWords(r"lamp(?=\s*(?:stack|server|box|setup|dev))|lamp\s*stack",
                ("apache2", "mysql", "php")),
    RecipeWords(r"lemp(?:\s*stack)?", ("nginx", "mysql", "php")),
    RecipeWords(r"elk(?:\s*stack)?", ("elasticsearch",)),
    RecipeWords(r"python\s*3?(?:\.[0-9]+)*|py3|pip|conda|numpy|pandas|scikit[\s-]*learn|sklearn",
                ("python3",)),
    RecipeWords(r"node\.?js|node(?=\s*(?:[,+/&]|and\s|app|server|backend|api|dev|project|service"
                r"|box|vm|env|[0-9]|$))|npm|yarn|react(?:\.?js)?|next\.?js|vue(?:\.?js)?|angular(?:js)?"
                r"|express(?:\.?js)?|typescript|nest\.?js", ("nodejs",)),
    RecipeWords(r"java|jdk|openjdk|jvm|spring\s*boot|spring|maven|gradle|kotlin|tomcat",
                ("java",)),
    RecipeWords(r"golang|go\s*lang|go(?=\s*(?:1\.[0-9]+|backend|api|service|server|micro\s*services?"
                r"|app|toolchain|dev|compiler|project|code))", ("golang",)),
    RecipeWords(r"ruby\s*on\s*rails|ror|rails", ("rails",)),
    RecipeWords(r"ruby|rubygems|bundler", ("ruby",)),
    RecipeWords(r"php(?:[\s-]*fpm)?|laravel|symfony|wordpress|composer", ("php",)),
    RecipeWords(r"django", ("django",)),
    RecipeWords(r"flask", ("flask",)),
    RecipeWords(r"fast\s*api|uvicorn", ("fastapi",)),
    RecipeWords(r"postgres(?:ql)?|psql|pgsql|pg\s*database|postgis", ("postgresql",)),
    RecipeWords(r"mysql|mariadb", ("mysql",)),
    RecipeWords(r"mongo(?:\s*db)?", ("mongodb",)),
    RecipeWords(r"redis|valkey", ("redis",)),
    RecipeWords(r"elastic\s*search|opensearch", ("elasticsearch",)),
    RecipeWords(r"rabbit\s*mq|rabbit|amqp", ("rabbitmq",)),
    RecipeWords(r"docker(?:[\s-]*compose)?|containers?|podman", ("docker",)),
    RecipeWords(r"nginx", ("nginx",)),
    RecipeWords(r"apache\s*2?(?!\s*(?:kafka|spark|airflow|flink|cassandra|hadoop|tomcat|solr"
                r"|beam|superset|zookeeper|maven|pulsar|arrow))|httpd", ("apache2",)),
    RecipeWords(r"kubectl|kubernetes(?:\s*(?:cli|client|tools))?|k8s|helm", ("kubectl",)),
    RecipeWords(r"jenkins", ("jenkins",)),
    RecipeWords(r"jupyter(?:\s*(?:lab|hub|notebooks?))?|notebooks?|ipython", ("jupyter",)),
    RecipeWords(r"cuda(?:\s*toolkit)?|cudnn|nvidia\s*drivers?|nvcc", ("cuda",)),
    RecipeWords(r"py\s*torch|torch", ("pytorch",)),
    RecipeWords(r"tensor\s*flow|keras", ("tensorflow",)),
)  # fmt: skip

# VM name stem when the recipe is the main workload, and its rank: the highest-ranked recipe
# asked for is the main workload (ties go to the earlier one in install order).
NAME_STEMS: dict[str, tuple[str, int]] = {
    "python3": ("python-dev", 1), "nodejs": ("node-dev", 2), "java": ("java-dev", 2),
    "golang": ("go-dev", 2), "ruby": ("ruby-dev", 2), "php": ("php-dev", 2),
    "django": ("django-dev", 3), "flask": ("flask-dev", 3), "fastapi": ("fastapi-dev", 3),
    "rails": ("rails-dev", 3), "postgresql": ("postgres-db", 2), "mysql": ("mysql-db", 2),
    "mongodb": ("mongo-db", 2), "redis": ("redis-cache", 1), "elasticsearch": ("search-node", 2),
    "rabbitmq": ("rabbitmq-broker", 2), "docker": ("docker-host", 1), "nginx": ("nginx-web", 1),
    "apache2": ("apache-web", 1), "kubectl": ("k8s-tools", 1), "jenkins": ("jenkins-ci", 3),
    "jupyter": ("jupyter-lab", 3), "cuda": ("cuda-box", 3), "pytorch": ("pytorch-train", 4),
    "tensorflow": ("tensorflow-train", 4),
}  # fmt: skip
FALLBACK_STEMS = ("gpu-box", "windows-box", "dev-box")
NAME_STEM_VOCABULARY = frozenset(s for s, _ in NAME_STEMS.values()) | set(FALLBACK_STEMS)


@dataclass(frozen=True, slots=True)
class GpuWords:
    gpu_type: str  # catalog GPU type
    aliases: str


# Longer names first: "a100 80gb" must win over "a100".
GPU_WORDS: tuple[GpuWords, ...] = (
    GpuWords("nvidia-a100-80gb", r"a100[\s-]*80\s*g(?:i?b)?"),
    GpuWords("nvidia-tesla-a100", r"a100(?:[\s-]*40\s*g(?:i?b)?)?"),
    GpuWords("nvidia-h100-80gb", r"h100(?:[\s-]*80\s*g(?:i?b)?)?"),
    GpuWords("nvidia-l4", r"l4"),
    GpuWords("nvidia-tesla-t4", r"t4"),
)
DEFAULT_GPU = "nvidia-l4"  # bundled with g2, which is offered in most regions
UNAVAILABLE_GPUS = r"v100|p100|p4|k80|a10g?|h200|b200|l40s?|rtx\s*[0-9]{4}|mi[0-9]{3}x?"


@dataclass(frozen=True, slots=True)
class SizeProfile:
    name: str
    words: str
    vcpus: float
    memory_gb: float


# Earliest mention wins; at the same position the earlier row wins ("extra large" over "large").
SIZES: tuple[SizeProfile, ...] = (
    SizeProfile("tiny", r"tiny|micro|smallest|minimal", 0.25, 1),
    SizeProfile("small", r"small|little", 0.5, 2),  # e2-small: shared core, 2 GB
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

# Names people use for places, mapped to a place the catalog knows (a region id, or the city,
# country or area of a region in provisioning/data/region_geo.csv, lower-case).
PLACE_ALIASES: dict[str, str] = {
    "uk": "united kingdom", "u.k.": "united kingdom", "england": "united kingdom",
    "britain": "united kingdom", "great britain": "united kingdom", "holland": "netherlands",
    "the netherlands": "netherlands", "amsterdam": "netherlands", "munich": "germany",
    "hamburg": "germany", "brussels": "belgium", "barcelona": "spain", "rome": "italy",
    "eu": "europe", "emea": "europe", "western europe": "europe", "korea": "south korea",
    "new delhi": "delhi", "bangalore": "india", "bengaluru": "india", "taipei": "taiwan",
    "apac": "asia", "oceania": "australia", "latam": "south america", "zurich": "zurich",
    "zürich": "zurich", "montreal": "montreal", "quebec": "montreal", "rio": "brazil",
    "usa": "united states", "u.s.": "united states", "u.s.a.": "united states",
    "the us": "united states", "the states": "united states", "america": "united states",
    "us region": "united states", "us based": "united states", "us-based": "united states",
    "east coast": "us-east4", "west coast": "us-west1", "virginia": "us-east4",
    "california": "us-west2", "texas": "us-south1", "ohio": "us-east5", "utah": "us-west3",
    "nevada": "us-west4", "south carolina": "us-east1", "new york": "us-east4",
    "seattle": "us-west1", "san francisco": "us-west2", "silicon valley": "us-west2",
    "chicago": "us-central1", "midwest": "us-central1", "tel-aviv": "tel aviv",
}  # fmt: skip
# Words that are close to a product or place name but are ordinary words: never "corrected".
NOT_TYPOS = frozenset({
    "window", "median", "docket", "docked", "locker", "rocker", "nodes", "pairs", "reds",
    "jenkin", "debain", "muster", "clusters", "windy",
})  # fmt: skip
# Product and OS names a one-letter slip away from what people type ("postgress", "ubunut").
TYPO_TARGETS = (
    "postgres", "postgresql", "ubuntu", "debian", "django", "docker", "mongodb", "jupyter",
    "pytorch", "tensorflow", "kubernetes", "kubectl", "jenkins", "elasticsearch", "rabbitmq",
    "windows", "fastapi", "nodejs", "golang", "frankfurt", "singapore", "netherlands", "london",
    "nginx", "mysql", "redis", "flask", "apache", "preemptible", "memory",
)  # fmt: skip
KNOWN_MISSPELLINGS: dict[str, str] = {
    "postgress": "postgres", "postgressql": "postgresql", "postgre": "postgres",
    "postgresq": "postgresql", "posgres": "postgres", "progres": "postgres",
    "ubunut": "ubuntu", "ubunto": "ubuntu", "ubutnu": "ubuntu", "ubunutu": "ubuntu",
    "ubuntu22": "ubuntu 22", "ubuntu24": "ubuntu 24", "redsi": "redis", "reddis": "redis",
    "mongo-db": "mongodb", "mogodb": "mongodb", "mysq": "mysql", "myslq": "mysql",
    "ngnix": "nginx", "nignx": "nginx", "dokcer": "docker", "djano": "django", "jango": "django",
    "jupiter": "jupyter", "juptyer": "jupyter", "pytroch": "pytorch", "tensorflwo": "tensorflow",
    "kubernets": "kubernetes", "kuberentes": "kubernetes", "elastisearch": "elasticsearch",
    "win2022": "windows 2022", "win2019": "windows 2019", "gigs": "gigs", "rabitmq": "rabbitmq",
}  # fmt: skip

DEFAULT_DISK_GB = 30
DEFAULT_DISK_TYPE = "pd-balanced"
MAX_TEXT_CHARS = 1500  # a sentence or two; bounds the parse time too
MAX_TTL_HOURS = 24 * 90
MAX_REGION_TRIES = 6  # regions of one place tried before giving up ("in Europe")
EXAMPLE = "`/vm a Django dev server with Postgres and Redis for 2 hours`"

# -- regexes (compiled once) ---------------------------------------------------------------

_B = r"(?<![a-z0-9])"  # word start
_E = r"(?![a-z0-9])"  # word end
_DIGITS = r"[0-9]+(?:\.[0-9]+)?"
_NUMBER_WORDS: dict[str, float] = {
    "a couple of": 2, "a couple": 2, "couple of": 2, "a few": 3, "few": 3,
    "half an": 0.5, "half a": 0.5, "a": 1, "an": 1, "one": 1, "single": 1, "two": 2,
    "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "fourteen": 14, "fifteen": 15, "sixteen": 16, "eighteen": 18,
    "twenty": 20, "twenty-four": 24, "thirty": 30, "thirty-two": 32, "thirty-six": 36,
    "forty": 40, "forty-eight": 48, "sixty": 60, "sixty-four": 64, "seventy-two": 72,
    "ninety": 90, "ninety-six": 96, "a hundred": 100, "hundred": 100,
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
    rf"(?P<model>{'|'.join(f'(?P<g{i}>{g.aliases})' for i, g in enumerate(GPU_WORDS))})s?{_E}"
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
_VRAM_NOUN = r"(?:vram|v-ram|gpu\s*(?:memory|ram|mem)|video\s*(?:memory|ram)|graphics\s*memory)"
_VRAM_RES = (
    re.compile(
        rf"{_B}(?:at\s+least\s+)?(?P<n>{_DIGITS})\s*(?P<u>{_SIZE_UNIT})?\s*(?:of\s+)?{_VRAM_NOUN}{_E}"
    ),
    re.compile(
        rf"{_B}{_VRAM_NOUN}\s*(?:[:=]|of|with)?\s*(?:at\s+least\s+)?(?P<n>{_DIGITS})\s*(?P<u>{_SIZE_UNIT})?{_E}"
    ),
    re.compile(
        rf"{_B}(?P<n>{_DIGITS})\s*(?P<u>gb|gib|g|gigs?)\s*(?:nvidia\s+)?(?:gpus?|graphics\s+cards?){_E}"
    ),
    re.compile(
        rf"{_B}gpus?\s+with\s+(?:at\s+least\s+)?(?P<n>{_DIGITS})\s*(?P<u>gb|gib|g|gigs?)"
        rf"(?:\s+(?:of\s+)?memory)?(?!\s*(?:of\s+)?(?:system\s+)?(?:ram|disk|storage|ssd|hdd)){_E}"
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
# Vague spans of time, used only when no amount is given ("for the afternoon, say 4 hours" is 4 h).
_DURATION_PHRASES = (
    (re.compile(rf"{_B}overnight{_E}"), 12.0),
    (re.compile(rf"{_B}(?:all|whole|full|(?:the\s+)?rest\s+of\s+the)\s+day{_E}"), 8.0),
    (re.compile(rf"{_B}(?:a|one|the)\s+(?:work(?:ing)?|business)\s*day{_E}"), 8.0),
    (re.compile(rf"{_B}(?:the|this|an|one)\s+(?:afternoon|morning|evening){_E}"), 4.0),
    (re.compile(rf"{_B}(?:for\s+the|this)\s+day{_E}|{_B}today{_E}"), 8.0),
    (re.compile(rf"{_B}(?:the|this|a|over\s+the)\s+weekend{_E}"), 48.0),
    (re.compile(rf"{_B}(?:a|one|the)\s+fortnight{_E}"), 336.0),
    (re.compile(rf"{_B}(?:a|one|the|this)\s+sprint{_E}"), 336.0),
    (re.compile(rf"{_B}(?:until|till|til)\s+tomorrow{_E}"), 24.0),
    (re.compile(rf"{_B}a\s+(?:quick|short)\s+(?:test|try|look|experiment){_E}"), 1.0),
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
# One pass for all recipe words: at a given position the earlier table row wins (stacks first,
# "ruby on rails" before "ruby").
_RECIPE_RE = re.compile(
    rf"{_B}(?:" + "|".join(f"(?P<r{i}>{w.aliases})" for i, w in enumerate(RECIPE_WORDS)) + rf"){_E}"
)
# A pattern runs only when one of its trigger words is in the text: most requests mention a few
# things, so most patterns are skipped without scanning (the parse-time budget is per request).
_TRIGGERS: dict[re.Pattern[str], tuple[str, ...]] = {
    _MACHINE_TYPE_RE: ("standard", "high", "ultra", "mega", "hyper", "micro", "small", "medium",
                       "custom"),
    _REGION_ID_RE: ("us-", "europe-", "asia-", "australia-", "america-", "me-", "africa-"),
    _GPU_MODEL_RE: ("a100", "h100", "l4", "t4"),
    _GPU_GENERIC_RE: ("gpu",),
    _GPU_OFF_RE: ("gpu", "cpu"),
    _MEMORY_RES[0]: ("ram", "mem"),
    _MEMORY_RES[1]: ("ram", "mem"),
    _DISK_RES[0]: ("disk", "storage", "drive", "space", "ssd", "hdd", "volume"),
    _DISK_RES[1]: ("disk", "storage", "drive"),
    _VCPU_RES[0]: ("cpu", "core", "processor", "thread"),
    _VCPU_RES[1]: ("cpu", "core"),
    _VCPU_WORD_RE: ("core",),
    _BARE_SIZE_RE: ("b", "gig"),
    _SPOT_RE: ("spot", "emptible", "interrupt"),
    _ON_DEMAND_RE: ("demand", "emptible", "regular"),
    **dict.fromkeys(_VRAM_RES[:2], ("vram", "v-ram", "gpu", "video", "graphics")),
    **dict.fromkeys(_VRAM_RES[2:], ("gpu", "graphics")),
}  # fmt: skip
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
    min_vram_gb: float | None = None  # "24GB of VRAM": the smallest GPU that has it
    image_family: str | None = None
    region: str | None = None
    # Other regions of the same place ("in Europe"), tried in order when `region` can't serve.
    region_alternatives: tuple[str, ...] = ()
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
        triggers = _TRIGGERS.get(pattern)
        if triggers is not None and not any(t in self._masked for t in triggers):
            return []
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


_WORD_RE = re.compile(r"[a-z][a-z0-9.-]*[a-z0-9]")
_KNOWN_WORDS = frozenset(TYPO_TARGETS) | NOT_TYPOS


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


# One edit (a deletion, insertion, substitution or swap) away: the words share a deletion.
_TYPO_INDEX: dict[str, str] = {}
for _target in TYPO_TARGETS:
    for _variant in (_target, *_deletions(_target)):
        _TYPO_INDEX.setdefault(_variant, _target)


@functools.lru_cache(maxsize=4096)
def _correct(word: str) -> str:
    if word in KNOWN_MISSPELLINGS:
        return KNOWN_MISSPELLINGS[word]
    if len(word) < 6 or word in _KNOWN_WORDS or not word.isalpha():
        return word
    for variant in (word, *sorted(_deletions(word))):
        target = _TYPO_INDEX.get(variant)
        if target is not None and abs(len(target) - len(word)) <= 1:
            return target
    return word


def fix_typos(text: str) -> str:
    """Correct common slips in product and place names ("postgress" → "postgres")."""
    return _WORD_RE.sub(lambda m: _correct(m.group(0)), text)


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
        self._places = _places(catalog)
        alternation = "|".join(
            re.escape(p).replace(r"\ ", r"\s+") for p in sorted(self._places, key=len, reverse=True)
        )
        self._place_re = re.compile(rf"{_B}(?:{alternation}){_E}")
        self._gpu_labels = {g.gpu_type: g.label for g in catalog.gpus}
        self._offered_images = ", ".join(i.label for i in catalog.images)

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def suggest(self, text: str) -> VmSpec:
        check_text(text)
        return self.plan(self.read(text))

    # -- reading ---------------------------------------------------------------------------

    def read(self, text: str) -> Wants:
        """Parse `text` into Wants. Raises AdvisorError for asks the catalog can't have."""
        scan = _Scan(fix_typos(normalize(text)))
        wants = Wants()
        try:
            for extract in (
                self._machine_type,
                self._region,
                self._gpu_models,
                _vram,
                _gpu_generic,
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
        except CatalogError as e:
            raise AdvisorError(str(e)) from e
        return wants

    def _machine_type(self, scan: _Scan, wants: Wants) -> None:
        for m in scan.kept(scan.take(_MACHINE_TYPE_RE)):
            name = m.group(0)
            self._catalog.machine_type(name)  # raises a CatalogError naming alternatives
            wants.machine_type = wants.machine_type or name

    def _os(self, scan: _Scan, wants: Wants) -> None:
        _os(scan, wants, self._offered_images)

    def _gpu_models(self, scan: _Scan, wants: Wants) -> None:
        _gpu_models(scan, wants, ", ".join(self._gpu_labels.values()))

    def _region(self, scan: _Scan, wants: Wants) -> None:
        found: list[tuple[int, tuple[str, ...]]] = []
        for m in scan.kept(scan.take(_REGION_ID_RE)):
            self._catalog.region_location(m.group("id"))  # raises for unknown regions
            found.append((m.start(), (m.group("id"),)))
        for m in scan.kept(scan.take(self._place_re)):
            found.append((m.start(), self._places[" ".join(m.group(0).split())]))
        if found:
            regions = min(found)[1]
            wants.region = regions[0]
            wants.region_alternatives = regions[1:MAX_REGION_TRIES]

    # -- planning --------------------------------------------------------------------------

    def plan(self, wants: Wants, *, source: Source = "rules") -> VmSpec:
        """Size, fit, price and validate Wants into a VmSpec, or raise AdvisorError.

        With several candidate regions (a country or continent), the first that can serve the
        request wins; when none can, the error is the first region's.
        """
        regions = (wants.region or self._default_region, *wants.region_alternatives)
        first_error: AdvisorError | None = None
        for region in regions:
            try:
                spec = self._plan_in(wants, region, source)
                return validate_spec(spec, self._catalog)
            except (CatalogError, InvalidSpec) as e:
                first_error = first_error or AdvisorError(str(e))
            except AdvisorError as e:
                first_error = first_error or e
        assert first_error is not None
        raise first_error

    def _plan_in(self, wants: Wants, region: str, source: Source) -> VmSpec:
        catalog = self._catalog
        image = catalog.image(wants.image_family or DEFAULT_IMAGE)
        windows = image.os_family == "windows"
        recipes = with_requirements(wants.recipes)
        unsupported = [r for r in recipes if image.os_family not in RECIPES_BY_NAME[r].os_families]
        if unsupported:
            raise AdvisorError(
                "Package recipes install on Linux only; ask for Ubuntu, Debian or Rocky Linux, "
                "or leave out " + ", ".join(unsupported) + "."
            )
        needs_gpu = [RECIPES_BY_NAME[r].label for r in recipes if RECIPES_BY_NAME[r].needs_gpu]
        if needs_gpu and wants.gpu_off:
            raise AdvisorError(f"{needs_gpu[0]} needs a GPU; drop “no GPU” or leave it out.")
        spot = bool(wants.spot)

        if wants.machine_type:
            mt = catalog.machine_type(wants.machine_type)
            gpu = self._gpu_for_named_type(mt, wants)
            _check_named_type_fits(mt, wants)
            catalog.machine_price(mt.name, region)  # raises naming where it is offered
            choice = f"the machine type you named ({mt.name})"
        else:
            vcpus, memory_gb = _minimums(wants, recipes)
            gpu_type = self._gpu_type(wants, region, bool(needs_gpu))
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
            rationale = f"{self._subject(wants, recipes, gpu, image.label)} → {choice}"
        if spot:
            rationale += ", at spot prices"
        if ttl_hours is not None:
            rationale += f", {ttl_hours:g} h ≈ ${cost.usd_total:.2f}"
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
            rationale=rationale[:500],
            source=source,
        )

    def _gpu_type(self, wants: Wants, region: str, recipe_needs_gpu: bool) -> str | None:
        vram = wants.min_vram_gb
        if wants.gpu_type is not None:
            model = self._catalog.gpu(wants.gpu_type)
            if vram is not None and model.vram_gb < vram:
                raise AdvisorError(
                    f"{model.label} has {model.vram_gb:g} GB of memory, not {vram:g}; drop the "
                    "GPU model and I'll pick one that has it."
                )
            return wants.gpu_type
        if vram is not None and not wants.gpu_off:
            big_enough = [g for g in self._catalog.gpus if g.vram_gb >= vram]
            if not big_enough:
                largest = max(self._catalog.gpus, key=lambda g: g.vram_gb)
                raise AdvisorError(
                    f"No GPU in the catalog has {vram:g} GB of memory; the most is "
                    f"{largest.vram_gb:g} GB ({largest.label}). Ask for several GPUs instead."
                )
            here = [g for g in big_enough if region in self._catalog.gpu_regions(g.gpu_type)]
            return (here or big_enough)[0].gpu_type
        if _gpu_wanted(wants) or (recipe_needs_gpu and not wants.gpu_off):
            return DEFAULT_GPU
        return None

    def _gpu_for_named_type(self, mt: MachineType, wants: Wants) -> Gpu | None:
        if mt.has_gpu and mt.gpu_type:
            asked = wants.gpu_type
            if wants.gpu_off and not asked:
                raise AdvisorError(f"{mt.name} comes with a GPU; name a type without one.")
            if asked and (asked != mt.gpu_type or (wants.gpu_count or 1) > mt.gpu_count):
                raise AdvisorError(
                    f"{mt.name} comes with {mt.gpu_count}× {self._gpu_label(mt.gpu_type)}, not "
                    f"{wants.gpu_count or 1}× {self._gpu_label(asked)}; drop one of the two."
                )
            return Gpu(type=mt.gpu_type, count=mt.gpu_count)
        if not _gpu_wanted(wants):
            return None
        attachable = [g for g in self._catalog.attachable_gpus if g.machine_family == mt.family]
        gpu_type = wants.gpu_type or (attachable[0].gpu_type if attachable else DEFAULT_GPU)
        if not any(g.gpu_type == gpu_type for g in attachable):
            raise AdvisorError(
                f"{self._gpu_label(gpu_type)} can't be added to {mt.name}; drop the machine type "
                "and I'll pick one that has it."
            )
        return Gpu(type=gpu_type, count=wants.gpu_count or 1)

    def _name(self, recipes: tuple[str, ...], gpu: Gpu | None, windows: bool) -> str:
        if recipes:
            order = {r.name: i for i, r in enumerate(RECIPES)}
            main = max(recipes, key=lambda r: (NAME_STEMS[r][1], -order[r]))
            stem = NAME_STEMS[main][0]
        else:
            stem = "gpu-box" if gpu else "windows-box" if windows else "dev-box"
        suffix = re.sub(r"[^a-z0-9]", "", self._name_suffix().lower())[:8] or "0"
        return f"{stem}-{suffix}"

    def _gpu_label(self, gpu_type: str) -> str:
        return self._gpu_labels.get(gpu_type, gpu_type)

    def _subject(
        self, wants: Wants, recipes: tuple[str, ...], gpu: Gpu | None, image_label: str
    ) -> str:
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
        extras = []
        if wants.vcpus is not None:
            extras.append(f"{wants.vcpus:g} vCPUs")
        if wants.memory_gb is not None:
            extras.append(f"{wants.memory_gb:g} GB memory")
        if gpu is not None:
            extras.append(f"{gpu.count}× {self._gpu_label(gpu.type)}")
        return head + (" with " + ", ".join(extras) if extras else "")


def check_text(text: str) -> None:
    """Refuse empty and overlong requests before anything reads them."""
    if not text or not text.strip():
        raise AdvisorError(f"Tell me what you need, e.g. {EXAMPLE}.")
    if len(text) > MAX_TEXT_CHARS:
        raise AdvisorError("That request is too long; describe the VM in a sentence or two.")


def _places(catalog: Catalog) -> dict[str, tuple[str, ...]]:
    """Lower-case place names → the regions there, in the catalog's preference order."""
    places: dict[str, list[str]] = {}
    for r in catalog.regions:
        for name in (r.location, r.city, r.country, r.area):
            if name:
                places.setdefault(normalize(name), []).append(r.id)
    resolved = {name: tuple(dict.fromkeys(ids)) for name, ids in places.items()}
    for alias, target in PLACE_ALIASES.items():
        if catalog.has_region(target):
            resolved[alias] = (target,)
        elif normalize(target) in resolved:
            resolved[alias] = resolved[normalize(target)]
    return resolved


# -- extractors (scan, wants) -> None ------------------------------------------------------


def _gpu_models(scan: _Scan, wants: Wants, offered: str) -> None:
    for m in scan.kept(scan.take(_GPU_UNAVAILABLE_RE)):
        name = " ".join(m.group(0).upper().split())
        raise AdvisorError(f"{name} GPUs aren't in the catalog; choose one of {offered}.")
    for m in scan.take(_GPU_MODEL_RE):
        if scan.negated(m):
            continue
        model = next(g for i, g in enumerate(GPU_WORDS) if m.group(f"g{i}"))
        count = _number(m) if m.group("n") or m.group("w") else float(m.group("times") or 1)
        if wants.gpu_type is None:
            wants.gpu_type = model.gpu_type
            if m.group("n") or m.group("w") or m.group("times"):
                wants.gpu_count = _gpu_count(count)


def _vram(scan: _Scan, wants: Wants) -> None:
    for pattern in _VRAM_RES:
        for m in scan.kept(scan.take(pattern)):
            if wants.min_vram_gb is None:
                gb = _gigabytes(_number(m), m.group("u"))
                if not gb > 0:
                    raise AdvisorError("Ask for a GPU with more than 0 GB of memory.")
                wants.min_vram_gb = gb
                wants.gpu_generic = True


def _gpu_generic(scan: _Scan, wants: Wants) -> None:
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
            if "w" in m.re.groupindex and m.group("w") and not m.group("u"):
                continue  # "a memory-hungry job" asks for no amount
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
    phrases = [
        (m.start(), m.end(), hours)
        for pattern, hours in _DURATION_PHRASES
        for m in scan.take(pattern)
    ]
    spans = spans or phrases  # an amount beats a vague phrase
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
    for m in scan.kept(scan.take(_RECIPE_RE)):
        words = RECIPE_WORDS[int((m.lastgroup or "r0")[1:])]
        wants.recipes.extend(r for r in words.recipes if r not in wants.recipes)


# -- planning helpers ----------------------------------------------------------------------


def _gpu_wanted(wants: Wants) -> bool:
    return wants.gpu_type is not None or (wants.gpu_generic and not wants.gpu_off)


def _minimums(wants: Wants, recipes: tuple[str, ...]) -> tuple[float, float]:
    """Minimum vCPUs and memory: what was asked explicitly, else the size word, else what the
    workload needs (a size word is the user's own call, so it beats the recipes' comfort)."""
    base = wants.size or DEFAULT_SIZE
    needs = [] if wants.size else [RECIPES_BY_NAME[r] for r in recipes]
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
