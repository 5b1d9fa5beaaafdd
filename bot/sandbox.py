"""`vmbot sandbox`: the whole product on one machine, with no accounts and no servers.

It starts the Slack emulator, the real Bolt app over HTTP, and a real Celery worker process
on the embedded (filesystem) broker with the local simulated cloud, then lets you chat with
the bot in the terminal. Everything you type goes to the app as a signed Slack request.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.slack_emulator import SlackEmulator
from bot.slack_wire import SlackWire

YOU = "U0YOU"
ADMIN = "U0ADMIN"
CHANNEL = "C0SANDBOX"
ADMIN_CHANNEL = "#vm-admin"
NAMES = {YOU: "you", ADMIN: "admin", "U0VMBOT": "vmbot"}

BANNER = """\
vm-creator sandbox — everything runs here: Slack emulator, the app, a worker, a simulated cloud.
You are @you in #sandbox. Try:
  /vm I need a Django dev server with Postgres and Redis for 2 hours
Then type the number of a button to press it, e.g. 1 for [1 Approve].
  /vm help · /vm list · home (your App Home) · as admin (act as @admin) · as you · quit
"""


def render_mrkdwn(text: str) -> str:
    """Slack mrkdwn as a terminal shows it: names for mentions, no bold stars, quotes marked."""
    text = re.sub(r"<@([A-Z0-9]+)>", lambda m: "@" + NAMES.get(m.group(1), m.group(1)), text)
    text = re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", r"\1", text)
    text = re.sub(r"\*([^*\n]+)\*", r"\1", text)
    text = re.sub(r"^>", "  │ ", text, flags=re.MULTILINE)
    return html.unescape(text)


@dataclass
class Chat:
    emulator: SlackEmulator
    wire: SlackWire
    user: str = YOU
    buttons: dict[int, dict[str, Any]] = field(default_factory=dict)
    modal: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next_button: int = 1

    def say(self, line: str) -> None:
        with self.lock:
            print(line, flush=True)

    def _label(self, channel: str | None) -> str:
        if channel == CHANNEL:
            return "#sandbox"
        if channel and channel.startswith("D"):
            return "DM"
        return "#vm-admin" if channel and "ADMIN" in channel else (channel or "?")

    def _render_blocks(self, channel: str, ts: str, items: list[dict[str, Any]]) -> list[str]:
        lines: list[str] = []
        for block in items:
            kind = block.get("type")
            if kind == "section":
                if "text" in block:
                    lines.append(render_mrkdwn(block["text"]["text"]))
                fields = [
                    render_mrkdwn(f["text"]).replace("\n", ": ", 1) for f in block.get("fields", [])
                ]
                for left, right in zip(fields[::2], fields[1::2] + [""], strict=False):
                    lines.append(f"  {left:<50} {right}")
            elif kind == "context":
                lines.extend(render_mrkdwn(e.get("text", "")) for e in block["elements"])
            elif kind == "header":
                lines.append(block["text"]["text"].upper())
            elif kind == "actions":
                labels = []
                for element in block["elements"]:
                    number = self._next_button
                    self._next_button += 1
                    self.buttons[number] = {
                        "channel": channel,
                        "ts": ts,
                        "action_id": element["action_id"],
                        "value": element.get("value", ""),
                        "block_id": block.get("block_id", ""),
                    }
                    labels.append(f"[{number} {element['text']['text']}]")
                lines.append("  ".join(labels))
        return lines

    def show(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("posted", "updated"):
            msg = event["message"]
            where = self._label(msg.get("channel"))
            if msg.get("thread_ts") and msg["thread_ts"] != msg.get("ts"):
                where += " · thread"
            private = msg.get("ephemeral_user")
            if private and private != self.user:
                return
            if private:
                where += ", only visible to you"
            body = (
                self._render_blocks(msg["channel"], msg["ts"], msg["blocks"])
                if msg.get("blocks")
                else [render_mrkdwn(msg.get("text", ""))]
            )
            if kind == "updated":
                # A card redraw: show only its status (the last block), not the whole card.
                last = body[-1].replace("\n", " · ") if body else ""
                self.say(f"  ↻ card in {where} now says: {last}")
            else:
                author = NAMES.get(msg.get("user", ""), "vmbot")
                self.say(f"\n[{where}] {author}:\n  " + "\n  ".join(body))
        elif kind == "view_opened":
            self.modal = event["view"]
            title = self.modal.get("title", {}).get("text", "Form")
            inputs = [b for b in self.modal.get("blocks", []) if b.get("type") == "input"]
            field: dict[str, Any] = inputs[0] if inputs else {}
            label = field.get("label", {}).get("text", "")
            self.say(f"\n📝 {title} — {label} Type your answer (or 'cancel'):")

    def handle(self, line: str) -> bool:
        line = line.strip()
        if not line:
            return True
        if line in ("quit", "exit"):
            return False
        if self.modal is not None:
            self._submit_modal(line)
            return True
        if line == "home":
            self._show_home()
        elif line.startswith("as "):
            who = line[3:].strip().lstrip("@")
            self.user = ADMIN if who == "admin" else YOU
            self.say(f"You are now @{NAMES[self.user]}.")
        elif line.startswith("/vm"):
            text = line[3:].strip()
            url = self.emulator.make_response_url(channel=CHANNEL, user=self.user)
            trigger = self.emulator.make_trigger_id(self.user)
            self._send(
                self.wire.slash_command(
                    user=self.user, channel=CHANNEL, text=text, response_url=url, trigger_id=trigger
                )
            )
        elif line.isdigit() and int(line) in self.buttons:
            button = self.buttons[int(line)]
            url = self.emulator.make_response_url(
                channel=button["channel"], user=self.user, message_ts=button["ts"]
            )
            self._send(
                self.wire.block_action(
                    user=self.user,
                    channel=button["channel"],
                    message_ts=button["ts"],
                    action_id=button["action_id"],
                    value=button["value"],
                    block_id=button["block_id"],
                    response_url=url,
                    trigger_id=self.emulator.make_trigger_id(self.user),
                )
            )
        else:
            self.say("Type /vm followed by what you need, a button number, 'as admin', or 'quit'.")
        return True

    def _show_home(self) -> None:
        # Slack publishes App Home when it is opened; so does the sandbox.
        self._send(self.wire.event({"type": "app_home_opened", "user": self.user, "tab": "home"}))
        view = self.emulator.wait_for(lambda e: e.home_view(self.user), timeout=5)
        lines = self._render_blocks(f"D{self.user}", "", view.view.get("blocks", []))
        self.say("\n🏠 App Home\n  " + "\n  ".join(lines))

    def _submit_modal(self, line: str) -> None:
        modal, self.modal = self.modal, None
        assert modal is not None
        if line == "cancel":
            self.say("Form closed.")
            return
        # The sandbox's forms have one text input each; the answer goes into it.
        field = next(b for b in modal.get("blocks", []) if b.get("type") == "input")
        action_id = field["element"]["action_id"]
        values = {field["block_id"]: {action_id: {"type": "plain_text_input", "value": line}}}
        response = self.wire.send(
            self.wire.view_submission(
                user=self.user,
                callback_id=modal.get("callback_id", ""),
                values=values,
                metadata=modal.get("private_metadata", ""),
            )
        )
        if response.body and '"errors"' in response.body:
            errors = json.loads(response.body).get("errors", {})
            self.say("The form says: " + " ".join(errors.values()) + " Try again (or 'cancel'):")
            self.modal = modal

    def _send(self, body: str) -> None:
        response = self.wire.send(body)
        if response.status != 200:
            self.say(f"(the app answered HTTP {response.status}: {response.body[:200]})")

    def follow(self, stop: threading.Event) -> None:
        seen = 0
        while not stop.is_set():
            for event in self.emulator.events(seen):
                seen = event["seq"] + 1
                self.show(event)
            stop.wait(0.2)


def run_sandbox(*, port: int, state_dir: Path, chat: bool) -> int:
    import waitress

    from bot.app import build_app
    from bot.bootstrap import build_runtime
    from bot.web import WebApp
    from db.migrate import upgrade
    from provisioning.settings import Settings

    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    # The terminal is the chat; the app's own log goes to a file beside the worker's.
    app_log = state_dir / "app.log"
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    file_handler = logging.FileHandler(app_log)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    root.setLevel(logging.INFO)
    token = "xoxb-sandbox-" + secrets.token_hex(12)  # fresh each run: no default secrets
    emulator = SlackEmulator(bot_token=token)
    emulator.start()
    emulator.add_user(YOU, "you")
    emulator.add_user(ADMIN, "admin")
    env = {
        "DATABASE_URL": f"sqlite:///{state_dir / 'vmbot.sqlite'}",
        "REDIS_URL": "",
        "SLACK_BOT_TOKEN": token,
        "SLACK_SIGNING_SECRET": secrets.token_hex(16),
        "SLACK_API_URL": emulator.base_url,
        "SLACK_APP_TOKEN": "",
        "VMBOT_STATE_DIR": str(state_dir),
        "VMBOT_BACKEND": "local",
        "VMBOT_ADMIN_CHANNEL": ADMIN_CHANNEL,
        "VMBOT_ADMINS": ADMIN,
        "OPENAI_API_KEY": "",
    }
    os.environ.update(env)  # the worker child inherits exactly what the app uses
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    upgrade(settings.database_url)
    runtime = build_runtime(settings)
    app = build_app(settings, runtime.services(), runtime.client)
    web = WebApp(app, {"database": runtime.check_database, "broker": runtime.check_broker})
    server = waitress.create_server(web, host="127.0.0.1", port=port, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    log_path = state_dir / "worker.log"
    with open(log_path, "ab") as worker_log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker", "--pool", "threads", "--concurrency", "4"],
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
    wire = SlackWire(env["SLACK_SIGNING_SECRET"], f"http://127.0.0.1:{port}/slack/events")
    print(f"App on http://127.0.0.1:{port} (/healthz, /metrics) · logs: {app_log}, {log_path}")
    stop = threading.Event()
    try:
        if not chat:
            print("Serving without a chat; Ctrl-C stops.")
            while worker.poll() is None:
                time.sleep(1)
            return worker.returncode or 1
        print(BANNER)
        session = Chat(emulator, wire)
        threading.Thread(target=session.follow, args=(stop,), daemon=True).start()
        while worker.poll() is None:
            try:
                line = input()
            except EOFError:
                break
            if not session.handle(line):
                break
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop.set()
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
        server.close()
        emulator.stop()
        runtime.close()
