"""A small terraform runner of our own: one working directory per VM, one command at a time.

python-terraform is not used: 0.10.1 sends flags that terraform 1.x rejects (`destroy -force`,
`apply -auto-approve=false`) and the project is abandoned. What we need is small:

- `build_argv` and `build_env` are pure: what to run is decided and tested apart from running it;
- `run` is the one function that starts a process. It streams every line to a callback, keeps the
  last lines of stderr for the error, and kills the process group when time is up;
- `TerraformRunner` strings those together per command and turns exit codes into results.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Command = Literal["init", "plan", "apply", "output", "destroy"]
LineCallback = Callable[[str], None]

PLAN_FILE = "plan.tfplan"
VARS_FILE = "vmbot.auto.tfvars.json"
STDERR_TAIL_LINES = 30
# After SIGTERM terraform stops gracefully (and releases its state lock); this is how long it gets.
KILL_GRACE_SECONDS = 10.0


class TerraformError(Exception):
    """A terraform command failed. `stderr_tail` holds its last lines of stderr."""

    def __init__(
        self, command: str, returncode: int | None, stderr_tail: Sequence[str], *, reason: str = ""
    ) -> None:
        self.command = command
        self.returncode = returncode
        self.stderr_tail = tuple(stderr_tail)
        self.reason = reason or f"exit status {returncode}"
        detail = error_summary(self.stderr_tail)
        super().__init__(
            f"terraform {command} failed ({self.reason})" + (f": {detail}" if detail else ".")
        )

    @property
    def lock_held(self) -> bool:
        """Another terraform process holds this working directory's state lock."""
        return any("Error acquiring the state lock" in line for line in self.stderr_tail)


class TerraformTimeout(TerraformError):
    pass


_BOX = re.compile(r"^[\s│╷╵]*")
# Lines terraform adds around an error to point at the source: `  15: variable "name" {` and
# the `├────` value hints under it. They matter in a terminal, not in a status message.
_SOURCE_EXCERPT = re.compile(r"^(\d+:(\s|$)|├|\.\.\.)")


def error_summary(stderr_lines: Sequence[str], *, limit: int = 500) -> str:
    """The `Error: ...` part of terraform's stderr as one line, without box drawing or source
    excerpts."""
    lines = [_BOX.sub("", line).strip() for line in stderr_lines]
    lines = [line for line in lines if line and not _SOURCE_EXCERPT.match(line)]
    start = next((i for i, line in enumerate(lines) if line.startswith("Error:")), 0)
    text = " ".join(lines[start:])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_argv(
    command: Command,
    workdir: str | Path,
    *,
    terraform_bin: str = "terraform",
    plan_file: str = PLAN_FILE,
    backend_config: Sequence[tuple[str, str]] = (),
    lock_timeout: str | None = None,
) -> list[str]:
    """The exact argv for one terraform command run against `workdir` (via -chdir).

    Every command that can prompt gets `-input=false` (`output` has no such flag: it never
    prompts), and all get `-no-color` so the lines we stream and keep read as plain text.
    """
    argv = [terraform_bin, f"-chdir={workdir}"]
    lock = [f"-lock-timeout={lock_timeout}"] if lock_timeout else []
    if command == "init":
        return [
            *argv,
            "init",
            "-input=false",
            "-no-color",
            *(f"-backend-config={key}={value}" for key, value in backend_config),
        ]
    if command == "plan":
        # -detailed-exitcode: 0 means no changes, 2 means changes, 1 means an error.
        return [
            *argv,
            "plan",
            "-input=false",
            "-no-color",
            *lock,
            "-detailed-exitcode",
            f"-out={plan_file}",
        ]
    if command == "apply":
        # A saved plan is applied as planned: no -auto-approve needed, none of it re-decided.
        return [*argv, "apply", "-input=false", "-no-color", *lock, plan_file]
    if command == "output":
        return [*argv, "output", "-no-color", "-json"]
    if command == "destroy":
        return [*argv, "destroy", "-input=false", "-no-color", *lock, "-auto-approve"]
    raise ValueError(f"unknown terraform command {command!r}")


def build_env(
    base: Mapping[str, str],
    *,
    cli_config_file: str | None = None,
    plugin_cache_dir: str | None = None,
) -> dict[str, str]:
    """The environment terraform runs in: `base` plus what running unattended needs."""
    env = dict(base)
    env["TF_IN_AUTOMATION"] = "1"  # output without "now run terraform apply" hints
    env["TF_INPUT"] = "0"
    env["CHECKPOINT_DISABLE"] = "1"  # no version check call home from a worker
    if cli_config_file:
        env["TF_CLI_CONFIG_FILE"] = cli_config_file
    if plugin_cache_dir:
        # One download of the google provider for all VMs, not one per working directory.
        env["TF_PLUGIN_CACHE_DIR"] = plugin_cache_dir
    return env


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr_tail: tuple[str, ...]


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float,
    on_line: LineCallback | None = None,
) -> Completed:
    """Run argv to its end, passing each line of stdout and stderr to `on_line` as it comes.

    On timeout the whole process group gets SIGTERM, then SIGKILL after a grace period, and
    `TerraformTimeout` is raised. A non-zero exit is returned, not raised: what counts as
    failure depends on the command.
    """
    command = argv[2] if len(argv) > 2 else argv[0]
    proc = subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group, so a kill reaches provider plugins
    )
    assert proc.stdout is not None and proc.stderr is not None
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    stdout: list[str] = []
    timed_out = threading.Event()
    emit_lock = threading.Lock()

    def emit(line: str) -> None:
        if on_line is not None:
            with emit_lock:
                on_line(line)

    def read_stderr() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.rstrip("\n")
            tail.append(line)
            emit(line)

    def kill() -> None:
        timed_out.set()
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    try:
        for raw in proc.stdout:
            stdout.append(raw)
            emit(raw.rstrip("\n"))
        returncode = proc.wait()
        reader.join()
    finally:
        timer.cancel()
        if proc.poll() is None:  # interrupted by an exception in a callback: leave no orphan
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    if timed_out.is_set():
        raise TerraformTimeout(
            command, returncode, tuple(tail), reason=f"no result after {timeout:g} s; stopped"
        )
    return Completed(returncode, "".join(stdout), tuple(tail))


def _signal_group(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


@dataclass(frozen=True)
class RunnerConfig:
    terraform_bin: str = "terraform"
    cli_config_file: str | None = None  # becomes TF_CLI_CONFIG_FILE (mirrors, credentials)
    plugin_cache_dir: str | None = None
    lock_timeout: str | None = "30s"
    init_timeout: float = 600.0
    timeout: float = 1800.0  # plan, apply, destroy: a GPU VM can take many minutes


class TerraformRunner:
    """Terraform's commands on one working directory each; every failure is a TerraformError."""

    def __init__(self, config: RunnerConfig, base_env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self._env = build_env(
            os.environ if base_env is None else base_env,
            cli_config_file=config.cli_config_file,
            plugin_cache_dir=config.plugin_cache_dir,
        )

    def _argv(
        self, command: Command, workdir: Path, backend_config: Sequence[tuple[str, str]] = ()
    ) -> list[str]:
        return build_argv(
            command,
            workdir,
            terraform_bin=self.config.terraform_bin,
            backend_config=backend_config,
            lock_timeout=self.config.lock_timeout,
        )

    def _run(
        self,
        command: Command,
        workdir: Path,
        on_line: LineCallback | None,
        *,
        ok: frozenset[int] = frozenset({0}),
        timeout: float | None = None,
        backend_config: Sequence[tuple[str, str]] = (),
    ) -> Completed:
        try:
            done = run(
                self._argv(command, workdir, backend_config),
                self._env,
                timeout=timeout or self.config.timeout,
                on_line=on_line,
            )
        except FileNotFoundError as exc:
            raise TerraformError(
                command, None, (), reason=f"the terraform binary {exc.filename!r} was not found"
            ) from exc
        if done.returncode not in ok:
            raise TerraformError(command, done.returncode, done.stderr_tail)
        return done

    @staticmethod
    def write_variables(workdir: Path, variables: Mapping[str, Any]) -> Path:
        """Write the variables terraform loads automatically; atomically, so a crash leaves
        either the old file or the new one."""
        path = workdir / VARS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(variables), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    def init(
        self,
        workdir: Path,
        on_line: LineCallback | None = None,
        *,
        backend_config: Sequence[tuple[str, str]] = (),
    ) -> None:
        with self._plugin_cache_lock():
            self._run(
                "init",
                workdir,
                on_line,
                timeout=self.config.init_timeout,
                backend_config=backend_config,
            )

    def plan(self, workdir: Path, on_line: LineCallback | None = None) -> bool:
        """Plan into PLAN_FILE; True when there is something to change."""
        return self._run("plan", workdir, on_line, ok=frozenset({0, 2})).returncode == 2

    def apply(self, workdir: Path, on_line: LineCallback | None = None) -> None:
        """Apply the plan saved by `plan`, then drop it: a saved plan goes stale once applied."""
        self._run("apply", workdir, on_line)
        (workdir / PLAN_FILE).unlink(missing_ok=True)

    def output(self, workdir: Path) -> dict[str, Any]:
        """Output values by name; empty when nothing has been applied yet."""
        done = self._run("output", workdir, None)
        raw = json.loads(done.stdout or "{}")
        return {name: item.get("value") for name, item in raw.items()}

    def destroy(self, workdir: Path, on_line: LineCallback | None = None) -> None:
        self._run("destroy", workdir, on_line)

    @contextmanager
    def _plugin_cache_lock(self) -> Iterator[None]:
        # Terraform does not promise that concurrent inits can share a plugin cache.
        if not self.config.plugin_cache_dir:
            yield
            return
        cache = Path(self.config.plugin_cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / ".vmbot-init.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
