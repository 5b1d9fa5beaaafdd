"""`vmbot`: serve, worker, sandbox, suggest, db upgrade."""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from provisioning.settings import Settings

log = logging.getLogger("vmbot")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SystemExit(f"vmbot: bad configuration: {problems}") from None


def _require_migrated(url: str) -> None:
    from db.migrate import current_revision, head_revision

    if current_revision(url) != head_revision():
        raise SystemExit("vmbot: the database schema is not up to date. Run `vmbot db upgrade`.")


def cmd_db(args: argparse.Namespace) -> int:
    from db.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    print("Database is up to date.")
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    from bot.advisor import AdvisorError
    from bot.bootstrap import build_advisor
    from provisioning.catalog import CatalogError

    def fail(message: str, code: int) -> int:
        if args.json or not args.text:
            print(json.dumps({"error": message}), flush=True)
        else:
            print(f"Sorry: {message}", file=sys.stderr)
        return code

    try:
        advisor = build_advisor(_settings())
    except SystemExit as exc:  # _settings() explains bad configuration this way
        return fail(str(exc.code), 2)
    except CatalogError as exc:  # e.g. VMBOT_DEFAULT_REGION is not in the catalog
        return fail(f"bad configuration: {exc}", 2)

    def one(text: str) -> tuple[dict, bool]:
        try:
            return advisor.suggest(text).model_dump(mode="json"), True
        except AdvisorError as exc:
            return {"error": str(exc)}, False
        except Exception as exc:  # noqa: BLE001 - one bad line must not end a batch
            log.warning("suggest failed with %s", type(exc).__name__)
            return {"error": "Something went wrong reading that request; try rewording it."}, False

    if args.text:
        result, ok = one(" ".join(args.text))
        if args.json:
            print(json.dumps(result))
        elif ok:
            _print_spec(result)
        else:
            print(f"Sorry: {result['error']}", file=sys.stderr)
        return 0 if ok else 1
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="replace")  # a stray byte must not end the batch
    for line in sys.stdin:
        result, _ = one(line.rstrip("\r\n"))
        print(json.dumps(result), flush=True)
    return 0


def _print_spec(spec: dict) -> None:
    gpu = f" + {spec['gpu']['count']}x {spec['gpu']['type']}" if spec["gpu"] else ""
    ttl = f"{spec['ttl_hours']:g} h" if spec["ttl_hours"] else "no expiry"
    total = spec["cost"]["usd_total"]
    size = f"{spec['vcpus']} vCPU, {spec['memory_gb']:g} GB"
    print(f"{spec['name']}: {spec['machine_type']}{gpu} ({size})")
    disk = f"{spec['disk_gb']} GB {spec['disk_type']}"
    print(f"  {spec['os_image']} · {disk} · {spec['region']} · {ttl}")
    if spec["packages"]:
        print(f"  installs {', '.join(spec['packages'])}")
    print(
        f"  ${spec['cost']['usd_per_hour']:.4f}/h" + (f", ≈ ${total:.2f} in all" if total else "")
    )
    print(f"  why: {spec['rationale']}")


def cmd_serve(args: argparse.Namespace) -> int:
    import waitress

    from bot.app import build_app
    from bot.bootstrap import build_runtime
    from bot.web import WebApp

    settings = _settings()
    if args.port:
        settings = settings.model_copy(update={"port": args.port})
    settings.secret("slack_bot_token")
    settings.secret("slack_signing_secret")
    _require_migrated(settings.database_url)
    runtime = build_runtime(settings)
    app = build_app(settings, runtime.services(), runtime.client)
    web = WebApp(app, {"database": runtime.check_database, "broker": runtime.check_broker})
    if settings.has_secret("slack_app_token"):
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        # Health and metrics still answer over HTTP; Slack itself comes in over the socket.
        threading.Thread(
            target=waitress.serve, args=(web,), kwargs={"port": settings.port}, daemon=True
        ).start()
        log.info("Socket Mode; health on :%s/healthz", settings.port)
        SocketModeHandler(app, settings.secret("slack_app_token")).start()
        return 0
    log.info("listening on :%s (POST /slack/events, GET /healthz, GET /metrics)", settings.port)
    waitress.serve(web, host=args.host, port=settings.port, threads=8)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from bot.bootstrap import build_worker

    settings = _settings()
    _require_migrated(settings.database_url)
    celery = build_worker(settings)
    schedule = Path(settings.vmbot_state_dir, "celerybeat-schedule")
    schedule.parent.mkdir(parents=True, exist_ok=True)
    argv = ["worker", "--loglevel=INFO", "-s", str(schedule)]
    if not args.no_beat:
        argv.append("--beat")
    celery.worker_main([*argv, *args.celery_args])
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bot.sandbox import run_sandbox

    return run_sandbox(port=args.port, state_dir=Path(args.state_dir), chat=not args.no_chat)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parser = argparse.ArgumentParser(prog="vmbot", description="Cloud VMs from Slack.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the Slack app (HTTP, or Socket Mode)")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 3000")
    serve.add_argument("--host", default="0.0.0.0")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run the Celery worker (with beat)")
    worker.add_argument("--no-beat", action="store_true", help="run beat elsewhere")
    worker.set_defaults(func=cmd_worker)

    sandbox = sub.add_parser("sandbox", help="everything at once, offline, with a chat")
    sandbox.add_argument("--port", type=int, default=3000)
    sandbox.add_argument("--state-dir", default=".vmbot/sandbox")
    sandbox.add_argument("--no-chat", action="store_true", help="serve only; no terminal chat")
    sandbox.set_defaults(func=cmd_sandbox)

    suggest = sub.add_parser("suggest", help="print the VmSpec for a request")
    suggest.add_argument("text", nargs="*", help="the request; without it, one per stdin line")
    suggest.add_argument("--json", action="store_true")
    suggest.set_defaults(func=cmd_suggest)

    dbp = sub.add_parser("db", help="database tasks")
    dbp.add_argument("action", choices=["upgrade"])
    dbp.set_defaults(func=cmd_db)

    # Anything `vmbot worker` does not know goes on to celery (e.g. --pool threads).
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.celery_args = extra
    if args.command in ("suggest", "sandbox"):
        # The sandbox is a chat; its worker logs to a file instead.
        logging.getLogger().setLevel(logging.WARNING)
    from provisioning.settings import ConfigError

    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"vmbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
