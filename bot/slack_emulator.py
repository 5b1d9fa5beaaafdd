"""A local stand-in for the Slack Web API.

The real ``slack_sdk.WebClient(base_url=emulator.base_url)`` talks to it over HTTP, so tests and
the offline sandbox exercise the same serialization, retry and error paths as production. It keeps
every call, message, response_url post and view in memory and lets callers wait for them.

Only the standard library is used: the sandbox must run with no accounts and nothing to install.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "Call",
    "Message",
    "ResponsePost",
    "SlackEmulator",
    "View",
]

T = TypeVar("T")

JSON = dict[str, Any]

# Form-encoded bodies carry structured values as JSON strings; only these keys are decoded, so a
# message text that happens to start with "[" stays text.
_JSON_FORM_KEYS = frozenset({"blocks", "attachments", "view", "metadata"})

_ID_RE = re.compile(r"^[A-Z0-9]+$")

RESPONSE_URL_METHOD = "response_url"
"""Pseudo method name that ``fail_next`` accepts to fail posts to response URLs."""


@dataclass(frozen=True)
class Call:
    """One Web API request as the emulator saw it (token removed, form JSON decoded)."""

    method: str
    params: JSON
    ok: bool
    time: float
    error: str | None = None


@dataclass
class Message:
    """A message in the emulated workspace; instances handed out are snapshots."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    blocks: list[JSON]
    user: str
    updates: int = 0
    ephemeral_user: str | None = None
    deleted: bool = False


@dataclass(frozen=True)
class ResponsePost:
    """One POST to a response URL. ``ok`` is False when the URL was not issued by the emulator."""

    token: str
    payload: JSON
    ok: bool
    time: float
    channel: str | None = None
    user: str | None = None
    message_ts: str | None = None


@dataclass
class View:
    """A modal or App Home view; instances handed out are snapshots."""

    id: str
    type: str
    view: JSON
    hash: str
    user: str | None = None
    trigger_id: str | None = None
    root_view_id: str | None = None
    previous_view_id: str | None = None
    external_id: str | None = None
    updates: int = 0


@dataclass
class _ResponseTarget:
    """What a response URL is attached to, so replace/delete_original have something to act on."""

    channel: str | None
    user: str | None
    message_ts: str | None


class _ApiError(Exception):
    """An ``ok: false`` Web API answer; Slack sends these with HTTP 200."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class _Fault:
    error: str
    status: int
    retry_after: int
    remaining: int


@dataclass
class _HttpAnswer:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


class SlackEmulator:
    """An in-process fake of the Slack Web API, served over HTTP on a local port.

    All state lives on the instance and is guarded by one lock; every change notifies one
    Condition, which is what ``wait_for`` blocks on.
    """

    def __init__(
        self,
        bot_token: str = "xoxb-emulator",
        team_id: str = "T0EMULATOR",
        bot_user_id: str = "U0VMBOT",
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = "B0EMULATOR"
        self.app_id = "A0EMULATOR"

        # RLock so a predicate or helper may call public methods while the lock is already held.
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._version = 0

        self._calls: list[Call] = []
        self._messages: list[Message] = []
        self._by_key: dict[tuple[str, str], Message] = {}
        self._responses: list[ResponsePost] = []
        self._response_targets: dict[str, _ResponseTarget] = {}
        self._views: dict[str, View] = {}
        # Uploaded files by id: (filename, content), filled by the upload URL.
        self._files: dict[str, tuple[str, bytes]] = {}
        self._shared_files: list[JSON] = []
        self._home_views: dict[str, str] = {}
        self._trigger_users: dict[str, str] = {}
        self._users: dict[str, JSON] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._events: list[JSON] = []
        self._last_ts_micros = 0
        self._ids = itertools.count(1)

        self._server: _EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve in a daemon thread; returns once the socket is bound, so ``base_url`` is valid.

        ``port=0`` picks a free port. Starting twice raises ``RuntimeError``.
        """
        if self._server is not None:
            raise RuntimeError("SlackEmulator is already running")
        server = _EmulatorServer((host, port), _Handler, self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"slack-emulator:{server.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop serving and free the port. Recorded state stays readable. Safe to call twice."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> SlackEmulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Root URL of the running server, without a trailing slash, e.g. ``http://127.0.0.1:5123``."""
        if self._server is None:
            raise RuntimeError("SlackEmulator is not running; call start() first")
        host, port = self._server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        if ":" in host_text:
            host_text = f"[{host_text}]"
        return f"http://{host_text}:{port}"

    @property
    def base_url(self) -> str:
        """Web API base for ``WebClient(base_url=...)``; ends with "/" because slack_sdk appends
        the method name to it."""
        return f"{self.url}/api/"

    # ------------------------------------------------------------------ setup helpers

    def add_user(
        self,
        user_id: str,
        name: str,
        email: str | None = None,
        *,
        real_name: str | None = None,
    ) -> None:
        """Register a user so ``users.info`` returns these details instead of generated ones."""
        with self._lock:
            self._users[user_id] = self._user_json(user_id, name, email, real_name)
            self._touch()

    def make_response_url(
        self,
        *,
        channel: str | None = None,
        user: str | None = None,
        message_ts: str | None = None,
    ) -> str:
        """Return a fresh response URL served by this emulator.

        Posts to it are always recorded in ``responses``. When ``channel`` is given they also
        appear as messages, the way Slack shows them: ephemeral to ``user`` unless
        ``response_type`` is ``in_channel``. ``message_ts`` names the message that
        ``replace_original``/``delete_original`` act on (the message a button was clicked in).
        """
        with self._lock:
            token = f"R{next(self._ids):06d}"
            self._response_targets[token] = _ResponseTarget(
                channel=self._resolve_channel(channel) if channel else None,
                user=user,
                message_ts=message_ts,
            )
        return f"{self.url}/response/{token}"

    def make_trigger_id(self, user: str | None = None) -> str:
        """Return a trigger id; views opened with it are attributed to ``user``."""
        with self._lock:
            trigger_id = f"{next(self._ids)}.{int(time.time())}.emulator"
            if user is not None:
                self._trigger_users[trigger_id] = user
        return trigger_id

    def post_user_message(
        self, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> Message:
        """Add a message written by a human (for the sandbox chat); returns its snapshot."""
        with self._lock:
            message = self._store_message(
                channel=self._resolve_channel(channel),
                text=text,
                blocks=[],
                user=user,
                thread_ts=thread_ts,
            )
            return dataclasses.replace(message)

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        status: int = 429,
        retry_after: int = 1,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` answer ``status`` with a ``Retry-After``
        header and ``{"ok": false, "error": error}``, before any other processing.

        ``method`` may be ``"response_url"`` to fail posts to response URLs. Faults queue up in
        the order they were added.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.setdefault(method, []).append(
                _Fault(error=error, status=status, retry_after=retry_after, remaining=times)
            )

    # ------------------------------------------------------------------ introspection

    @property
    def calls(self) -> list[Call]:
        """Every Web API call so far, in arrival order, including failed ones."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """Calls of one method, in arrival order."""
        with self._lock:
            return [c for c in self._calls if c.method == method]

    def messages(self, channel: str | None = None) -> list[Message]:
        """Snapshots of live (not deleted) messages in posting order, ephemeral ones included.

        ``channel`` accepts whatever ``chat.postMessage`` accepts (id, ``#name``, user id).
        """
        with self._lock:
            wanted = self._resolve_channel(channel) if channel else None
            return [
                dataclasses.replace(m)
                for m in self._messages
                if not m.deleted and (wanted is None or m.channel == wanted)
            ]

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """Snapshots of the replies under ``thread_ts`` (parent excluded), oldest first."""
        with self._lock:
            wanted = self._resolve_channel(channel)
            return [
                dataclasses.replace(m)
                for m in self._messages
                if not m.deleted
                and m.channel == wanted
                and m.thread_ts == thread_ts
                and m.ts != thread_ts
            ]

    def message(self, channel: str, ts: str) -> Message | None:
        """Snapshot of one live message, or None."""
        with self._lock:
            found = self._by_key.get((self._resolve_channel(channel), ts))
            if found is None or found.deleted:
                return None
            return dataclasses.replace(found)

    @property
    def responses(self) -> list[ResponsePost]:
        """Every POST to a response URL, in arrival order."""
        with self._lock:
            return list(self._responses)

    @property
    def views(self) -> list[View]:
        """Snapshots of every view opened, pushed or published, in creation order."""
        with self._lock:
            return [
                dataclasses.replace(v, view=copy.deepcopy(v.view)) for v in self._views.values()
            ]

    def home_view(self, user: str) -> View | None:
        """The App Home view last published for ``user``, or None."""
        with self._lock:
            view_id = self._home_views.get(user)
            if view_id is None:
                return None
            view = self._views[view_id]
            return dataclasses.replace(view, view=copy.deepcopy(view.view))

    def events(self, since: int = 0) -> list[JSON]:
        """The append-only event log from index ``since``; each event carries its ``seq``."""
        with self._lock:
            return copy.deepcopy(self._events[since:])

    def wait_for(
        self,
        predicate: Callable[[SlackEmulator], T | None | bool],
        timeout: float = 10.0,
    ) -> T:
        """Block until ``predicate(self)`` returns something truthy and return it.

        The predicate runs without the lock held, so it may call the emulator over HTTP. It is
        evaluated once up front and again after every change. Raises ``TimeoutError`` listing
        the recorded calls and response posts when ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = self._version
            result = predicate(self)
            if result:
                return cast(T, result)
            with self._changed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._summary(f"wait_for timed out after {timeout}s"))
                # A change that landed while the predicate ran must not be slept through.
                if self._version == seen:
                    self._changed.wait(remaining)

    # ------------------------------------------------------------------ request handling

    def handle_api(
        self, method: str, params: JSON, token: str | None
    ) -> tuple[int, JSON, dict[str, str]]:
        """Answer one Web API call as (HTTP status, JSON body, extra headers) and record it.

        This is what the HTTP server runs; it is public so the sandbox can drive the emulator
        in-process too.
        """
        with self._lock:
            answer = self._answer(method, params, token)
            error = None if answer.body.get("ok") else str(answer.body.get("error"))
            self._record_call(method, params, error)
        return answer.status, answer.body, answer.headers

    def reject_api_call(self, method: str, error: str) -> JSON:
        """Record a call whose request could not be decoded; returns the ``ok: false`` body."""
        with self._lock:
            self._record_call(method, {}, error)
        return {"ok": False, "error": error}

    def handle_response_url(self, token: str, payload: JSON) -> tuple[int, JSON, dict[str, str]]:
        """Answer one POST to a response URL and record it in ``responses``."""
        with self._lock:
            fault = self._take_fault(RESPONSE_URL_METHOD)
            target = self._response_targets.get(token)
            now = time.time()
            if fault is not None or target is None:
                self._responses.append(
                    ResponsePost(token=token, payload=copy.deepcopy(payload), ok=False, time=now)
                )
                self._touch()
                if fault is not None:
                    return self._fault_answer(fault)
                # Slack answers an unknown or expired response URL with 404.
                return 404, {"ok": False, "error": "invalid_token"}, {}
            message_ts = self._apply_response(target, payload)
            self._responses.append(
                ResponsePost(
                    token=token,
                    payload=copy.deepcopy(payload),
                    ok=True,
                    time=now,
                    channel=target.channel,
                    user=target.user,
                    message_ts=message_ts,
                )
            )
            self._event("response", token=token, payload=copy.deepcopy(payload))
            return 200, {"ok": True}, {}

    def messages_json(self, channel: str | None = None, since: int = 0) -> JSON:
        """The ``/_emulator/messages`` body: messages from list index ``since`` (deleted ones
        flagged, not dropped, so indexes stay stable) and ``next`` to poll from."""
        with self._lock:
            wanted = self._resolve_channel(channel) if channel else None
            items = [
                {"index": i, **_message_view(m)}
                for i, m in enumerate(self._messages)
                if i >= since and (wanted is None or m.channel == wanted)
            ]
            return {"ok": True, "messages": items, "next": len(self._messages)}

    def events_json(self, since: int = 0) -> JSON:
        """The ``/_emulator/events`` body: events from ``since`` and ``next`` to poll from."""
        with self._lock:
            return {"ok": True, "events": self.events(since), "next": len(self._events)}

    # ------------------------------------------------------------------ internals

    def _answer(self, method: str, params: JSON, token: str | None) -> _HttpAnswer:
        fault = self._take_fault(method)
        if fault is not None:
            status, body, headers = self._fault_answer(fault)
            return _HttpAnswer(status, body, headers)
        handler = self._methods().get(method)
        if handler is None:
            return _HttpAnswer(200, {"ok": False, "error": "unknown_method"})
        if token != self.bot_token:
            return _HttpAnswer(200, {"ok": False, "error": "invalid_auth"})
        try:
            return _HttpAnswer(200, {"ok": True, **handler(params)})
        except _ApiError as e:
            return _HttpAnswer(200, {"ok": False, "error": e.error})

    def _methods(self) -> dict[str, Callable[[JSON], JSON]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }

    @property
    def files(self) -> list[JSON]:
        """Files shared through files.completeUploadExternal: id, title, channel, content."""
        with self._lock:
            return [dict(f) for f in self._shared_files]

    def _files_get_upload_url(self, params: JSON) -> JSON:
        filename = _opt_str(params.get("filename"))
        if not filename or not params.get("length"):
            raise _ApiError("invalid_arguments")
        file_id = f"F{next(self._ids):010d}"
        self._files[file_id] = (filename, b"")
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def receive_upload(self, file_id: str, content: bytes) -> bool:
        with self._lock:
            if file_id not in self._files:
                return False
            self._files[file_id] = (self._files[file_id][0], content)
            self._touch()
            return True

    def _files_complete_upload(self, params: JSON) -> JSON:
        raw = params.get("files")
        files = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(files, list) or not files:
            raise _ApiError("invalid_arguments")
        channel = _opt_str(params.get("channel_id"))
        shared = []
        for item in files:
            file_id = str(item.get("id", ""))
            if file_id not in self._files:
                raise _ApiError("file_not_found")
            filename, content = self._files[file_id]
            record = {
                "id": file_id,
                "title": item.get("title") or filename,
                "name": filename,
                "channel": channel,
                "content": content.decode("utf-8", "replace"),
            }
            self._shared_files.append(record)
            shared.append({"id": file_id, "title": record["title"], "name": filename})
        if channel:
            self._store_message(
                channel=self._resolve_channel(channel),
                text=_opt_str(params.get("initial_comment")) or "",
                blocks=[],
                user=self.bot_user_id,
                thread_ts=_opt_str(params.get("thread_ts")),
            )
        return {"files": shared}

    def _record_call(self, method: str, params: JSON, error: str | None) -> None:
        # The token is a secret; it is checked, never kept.
        recorded = {k: copy.deepcopy(v) for k, v in params.items() if k != "token"}
        self._calls.append(
            Call(method=method, params=recorded, ok=error is None, time=time.time(), error=error)
        )
        self._touch()

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return fault

    @staticmethod
    def _fault_answer(fault: _Fault) -> tuple[int, JSON, dict[str, str]]:
        return (
            fault.status,
            {"ok": False, "error": fault.error},
            {"Retry-After": str(fault.retry_after)},
        )

    def _touch(self) -> None:
        self._version += 1
        self._changed.notify_all()

    def _event(self, kind: str, **data: Any) -> None:
        self._events.append({"seq": len(self._events), "type": kind, "time": time.time(), **data})
        self._touch()

    def _next_ts(self) -> str:
        # Real time keeps ts meaningful to a UI; the max() keeps them unique and increasing even
        # when two messages land in the same microsecond or the clock steps back.
        micros = max(int(time.time() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _resolve_channel(self, channel: str) -> str:
        """Map what callers pass as a channel to the id Slack would answer with."""
        raw = channel.strip().lstrip("#")
        if _ID_RE.match(raw) and raw[0] in "UW":
            return f"D{raw}"
        if _ID_RE.match(raw) and raw[0] in "CDG":
            return raw
        # A channel name: derive a stable id so "#vm-admin" and later lookups agree.
        return "C" + re.sub(r"[^A-Z0-9]", "", raw.upper())

    def _store_message(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[JSON],
        user: str,
        thread_ts: str | None,
        ephemeral_user: str | None = None,
    ) -> Message:
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            thread_ts=thread_ts or None,
            text=text,
            blocks=blocks,
            user=user,
            ephemeral_user=ephemeral_user,
        )
        self._messages.append(message)
        self._by_key[(channel, message.ts)] = message
        self._event("posted", channel=channel, ts=message.ts, message=_message_view(message))
        return message

    def _live_message(self, channel: str, ts: str) -> Message:
        found = self._by_key.get((channel, ts))
        if found is None or found.deleted:
            raise _ApiError("message_not_found")
        return found

    def _update_message(
        self, message: Message, text: str | None, blocks: list[JSON] | None
    ) -> None:
        # As in Slack, a field left out of an update keeps its old value.
        if text is not None:
            message.text = text
        if blocks is not None:
            message.blocks = blocks
        message.updates += 1
        self._event(
            "updated", channel=message.channel, ts=message.ts, message=_message_view(message)
        )

    def _delete_message(self, message: Message) -> None:
        message.deleted = True
        self._event("deleted", channel=message.channel, ts=message.ts)

    def _apply_response(self, target: _ResponseTarget, payload: JSON) -> str | None:
        if target.channel is None:
            return None
        original = (
            self._by_key.get((target.channel, target.message_ts)) if target.message_ts else None
        )
        if original is not None and original.deleted:
            original = None
        if _truthy(payload.get("delete_original")):
            if original is not None:
                self._delete_message(original)
            return target.message_ts
        blocks = _blocks_param(payload)
        if original is not None and _truthy(payload.get("replace_original")):
            self._update_message(original, str(payload.get("text", "")), blocks or [])
            return original.ts
        in_channel = payload.get("response_type") == "in_channel"
        message = self._store_message(
            channel=target.channel,
            text=str(payload.get("text", "")),
            blocks=blocks or [],
            user=self.bot_user_id,
            thread_ts=_opt_str(payload.get("thread_ts")),
            ephemeral_user=None if in_channel else target.user,
        )
        # Slack lets a later replace_original on the same URL replace this response.
        if target.message_ts is None:
            target.message_ts = message.ts
        return message.ts

    # --- Web API methods. Each returns the body without "ok" or raises _ApiError.

    def _auth_test(self, params: JSON) -> JSON:
        return {
            "url": "https://emulator.slack.local/",
            "team": "Emulator",
            "user": "vmbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: JSON) -> JSON:
        channel = self._channel_param(params)
        text, blocks = _opt_str(params.get("text")), _blocks_param(params)
        if not text and not blocks and not params.get("attachments"):
            raise _ApiError("no_text")
        message = self._store_message(
            channel=channel,
            text=text or "",
            blocks=blocks or [],
            user=self.bot_user_id,
            thread_ts=_opt_str(params.get("thread_ts")),
        )
        return {"channel": channel, "ts": message.ts, "message": self._api_message(message)}

    def _chat_update(self, params: JSON) -> JSON:
        channel = self._channel_param(params)
        message = self._live_message(channel, str(params.get("ts", "")))
        if message.ephemeral_user is not None:
            raise _ApiError("message_not_found")
        self._update_message(message, _opt_str(params.get("text")), _blocks_param(params))
        return {
            "channel": channel,
            "ts": message.ts,
            "text": message.text,
            "message": self._api_message(message),
        }

    def _chat_post_ephemeral(self, params: JSON) -> JSON:
        channel = self._channel_param(params)
        user = _opt_str(params.get("user"))
        if not user:
            raise _ApiError("user_not_in_channel")
        text, blocks = _opt_str(params.get("text")), _blocks_param(params)
        if not text and not blocks and not params.get("attachments"):
            raise _ApiError("no_text")
        message = self._store_message(
            channel=channel,
            text=text or "",
            blocks=blocks or [],
            user=self.bot_user_id,
            thread_ts=_opt_str(params.get("thread_ts")),
            ephemeral_user=user,
        )
        return {"message_ts": message.ts}

    def _chat_delete(self, params: JSON) -> JSON:
        channel = self._channel_param(params)
        message = self._live_message(channel, str(params.get("ts", "")))
        self._delete_message(message)
        return {"channel": channel, "ts": message.ts}

    def _views_open(self, params: JSON) -> JSON:
        trigger_id = _opt_str(params.get("trigger_id"))
        if not trigger_id:
            raise _ApiError("invalid_arguments")
        view = self._new_view(params, trigger_id=trigger_id, previous=None)
        return {"view": self._api_view(view)}

    def _views_push(self, params: JSON) -> JSON:
        trigger_id = _opt_str(params.get("trigger_id"))
        if not trigger_id:
            raise _ApiError("invalid_arguments")
        # Slack does not say which modal is underneath; the user's latest modal is the best guess.
        user = self._trigger_users.get(trigger_id)
        previous = next(
            (
                v
                for v in reversed(self._views.values())
                if v.type == "modal" and (user is None or v.user == user)
            ),
            None,
        )
        view = self._new_view(params, trigger_id=trigger_id, previous=previous)
        return {"view": self._api_view(view)}

    def _views_update(self, params: JSON) -> JSON:
        payload = _view_param(params)
        view_id, external_id = _opt_str(params.get("view_id")), _opt_str(params.get("external_id"))
        if view_id:
            view = self._views.get(view_id)
        elif external_id:
            view = next((v for v in self._views.values() if v.external_id == external_id), None)
        else:
            raise _ApiError("invalid_arguments")
        if view is None:
            raise _ApiError("not_found")
        expected_hash = _opt_str(params.get("hash"))
        if expected_hash and expected_hash != view.hash:
            raise _ApiError("hash_conflict")
        view.view = payload
        view.type = str(payload.get("type", view.type))
        view.external_id = _opt_str(payload.get("external_id")) or view.external_id
        view.hash = self._new_hash()
        view.updates += 1
        api_view = self._api_view(view)
        self._event("view_updated", view=api_view, user=view.user)
        return {"view": api_view}

    def _views_publish(self, params: JSON) -> JSON:
        user = _opt_str(params.get("user_id"))
        if not user:
            raise _ApiError("invalid_arguments")
        payload = _view_param(params)
        if payload.get("type") != "home":
            raise _ApiError("invalid_arguments")
        existing_id = self._home_views.get(user)
        if existing_id is None:
            view = View(
                id=self._new_view_id(),
                type="home",
                view=payload,
                hash=self._new_hash(),
                user=user,
                external_id=_opt_str(payload.get("external_id")),
            )
            self._views[view.id] = view
            self._home_views[user] = view.id
        else:
            # Slack keeps one Home view per user and hands back the same id on republish.
            view = self._views[existing_id]
            expected_hash = _opt_str(params.get("hash"))
            if expected_hash and expected_hash != view.hash:
                raise _ApiError("hash_conflict")
            view.view = payload
            view.hash = self._new_hash()
            view.updates += 1
        api_view = self._api_view(view)
        self._event("view_published", view=api_view, user=user)
        return {"view": api_view}

    def _users_info(self, params: JSON) -> JSON:
        user = _opt_str(params.get("user")) or ""
        if not (_ID_RE.match(user) and user[0] in "UW"):
            raise _ApiError("user_not_found")
        known = self._users.get(user)
        if known is None:
            if user == self.bot_user_id:
                known = self._user_json(user, "vmbot", None, "VM Bot")
                known["is_bot"] = True
            else:
                known = self._user_json(user, f"user.{user.lower()}", None, None)
        return {"user": copy.deepcopy(known)}

    def _conversations_open(self, params: JSON) -> JSON:
        channel = _opt_str(params.get("channel"))
        if channel:
            return {"channel": {"id": self._resolve_channel(channel)}}
        users_param = params.get("users")
        if isinstance(users_param, list):
            users = [str(u) for u in users_param]
        else:
            users = [u.strip() for u in str(users_param or "").split(",") if u.strip()]
        if not users:
            raise _ApiError("users_list_not_supplied")
        if any(not (_ID_RE.match(u) and u[0] in "UW") for u in users):
            raise _ApiError("user_not_found")
        if len(users) == 1:
            return {"channel": {"id": f"D{users[0]}", "is_im": True, "user": users[0]}}
        return {"channel": {"id": "G" + "".join(sorted(users)), "is_mpim": True}}

    def _conversations_history(self, params: JSON) -> JSON:
        channel = self._channel_param(params)
        limit = _int_param(params.get("limit"), 100)
        # Top-level messages only, newest first, as Slack returns them; ephemerals are never
        # part of history.
        top = [
            m
            for m in self._messages
            if m.channel == channel
            and not m.deleted
            and m.ephemeral_user is None
            and (m.thread_ts is None or m.thread_ts == m.ts)
        ]
        top.reverse()
        return {
            "messages": [self._api_message(m) for m in top[:limit]],
            "has_more": len(top) > limit,
        }

    def _conversations_replies(self, params: JSON) -> JSON:
        channel = self._channel_param(params)
        ts = str(params.get("ts", ""))
        parent = self._by_key.get((channel, ts))
        if parent is None or parent.deleted:
            raise _ApiError("thread_not_found")
        root = parent.thread_ts or parent.ts
        limit = _int_param(params.get("limit"), 1000)
        # Parent first, then replies oldest first, as Slack returns them.
        thread = [
            m
            for m in self._messages
            if m.channel == channel
            and not m.deleted
            and m.ephemeral_user is None
            and (m.ts == root or m.thread_ts == root)
        ]
        return {
            "messages": [self._api_message(m) for m in thread[:limit]],
            "has_more": len(thread) > limit,
        }

    # --- shapes

    def _channel_param(self, params: JSON) -> str:
        channel = _opt_str(params.get("channel"))
        if not channel:
            raise _ApiError("channel_not_found")
        return self._resolve_channel(channel)

    def _api_message(self, message: Message) -> JSON:
        body: JSON = {
            "type": "message",
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "team": self.team_id,
            "blocks": copy.deepcopy(message.blocks),
        }
        if message.user == self.bot_user_id:
            body["bot_id"] = self.bot_id
        if message.thread_ts:
            body["thread_ts"] = message.thread_ts
        if message.updates:
            body["edited"] = {"user": message.user, "ts": message.ts}
        replies = [
            m
            for m in self._messages
            if m.channel == message.channel
            and m.thread_ts == message.ts
            and m.ts != message.ts
            and not m.deleted
            and m.ephemeral_user is None
        ]
        if replies:
            body["thread_ts"] = message.ts
            body["reply_count"] = len(replies)
            body["latest_reply"] = replies[-1].ts
        return body

    def _new_view_id(self) -> str:
        return f"V0EMU{next(self._ids):06d}"

    def _new_hash(self) -> str:
        return f"{int(time.time())}.{next(self._ids):08d}"

    def _new_view(self, params: JSON, *, trigger_id: str, previous: View | None) -> View:
        payload = _view_param(params)
        view = View(
            id=self._new_view_id(),
            type=str(payload.get("type", "modal")),
            view=payload,
            hash=self._new_hash(),
            user=self._trigger_users.get(trigger_id),
            trigger_id=trigger_id,
            external_id=_opt_str(payload.get("external_id")),
        )
        if previous is not None:
            view.root_view_id = previous.root_view_id or previous.id
            view.previous_view_id = previous.id
        else:
            view.root_view_id = view.id
        self._views[view.id] = view
        self._event("view_opened", view=self._api_view(view), user=view.user)
        return view

    def _api_view(self, view: View) -> JSON:
        body: JSON = copy.deepcopy(view.view)
        body.update(
            {
                "id": view.id,
                "team_id": self.team_id,
                "type": view.type,
                "hash": view.hash,
                "root_view_id": view.root_view_id,
                "previous_view_id": view.previous_view_id,
                "external_id": view.external_id or "",
                "app_id": self.app_id,
                "bot_id": self.bot_id,
                "state": {"values": {}},
            }
        )
        body.setdefault("blocks", [])
        body.setdefault("private_metadata", "")
        body.setdefault("callback_id", "")
        return body

    def _user_json(self, user_id: str, name: str, email: str | None, real_name: str | None) -> JSON:
        real = real_name or name
        return {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real,
            "deleted": False,
            "is_bot": False,
            "is_admin": False,
            "tz": "UTC",
            "tz_offset": 0,
            "profile": {
                "email": email or f"{user_id.lower()}@example.com",
                "display_name": name,
                "display_name_normalized": name,
                "real_name": real,
                "real_name_normalized": real,
            },
        }

    def _summary(self, headline: str) -> str:
        with self._lock:
            lines = [f"{headline}; {len(self._calls)} call(s), {len(self._responses)} response(s)"]
            # The tail is what a failing test needs; a long sandbox run would drown the message.
            for c in self._calls[-40:]:
                status = "ok" if c.ok else f"error={c.error}"
                detail = _describe_params(c.params)
                lines.append(f"  {c.method} [{status}] {detail}".rstrip())
            for r in self._responses[-20:]:
                status = "ok" if r.ok else "rejected"
                lines.append(f"  response_url [{status}] {_describe_params(r.payload)}".rstrip())
            return "\n".join(lines)


# ---------------------------------------------------------------------- helpers


def _message_view(message: Message) -> JSON:
    return dataclasses.asdict(message)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in {"1", "true", "yes"}
    return bool(value)


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def _int_param(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        raise _ApiError("invalid_limit") from None


def _blocks_param(params: JSON) -> list[JSON] | None:
    blocks = params.get("blocks")
    if blocks is None:
        return None
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise _ApiError("invalid_blocks")
    return copy.deepcopy(blocks)


def _view_param(params: JSON) -> JSON:
    view = params.get("view")
    if not isinstance(view, dict):
        raise _ApiError("invalid_arguments")
    return copy.deepcopy(view)


def _describe_params(params: JSON) -> str:
    parts = []
    for key in ("channel", "user", "user_id", "ts", "thread_ts", "response_type"):
        if params.get(key):
            parts.append(f"{key}={params[key]}")
    text = params.get("text")
    if text:
        parts.append(f"text={str(text)[:120]!r}")
    elif params.get("blocks"):
        parts.append(f"blocks={len(params['blocks'])}")
    return " ".join(parts)


def _decode_form(pairs: Iterable[tuple[str, str]]) -> JSON:
    params: JSON = {}
    for key, value in pairs:
        params[key] = value
        if key in _JSON_FORM_KEYS:
            try:
                params[key] = json.loads(value)
            except ValueError:
                pass  # left as a string; the method answers invalid_blocks/invalid_arguments
    return params


# ---------------------------------------------------------------------- HTTP layer


class _EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    # Tests restart emulators quickly; don't wait for TIME_WAIT sockets.
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        emulator: SlackEmulator,
    ) -> None:
        self.emulator = emulator
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server_version = "SlackEmulator/1.0"

    @property
    def _emulator(self) -> SlackEmulator:
        return cast(_EmulatorServer, self.server).emulator

    def log_message(self, format: str, *args: Any) -> None:
        # Every test request would otherwise print to stderr.
        pass

    def do_POST(self) -> None:
        self._dispatch(self._read_body())

    def do_GET(self) -> None:
        self._dispatch(b"")

    def _dispatch(self, body: bytes) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
        if path.startswith("/api/"):
            self._api(path.removeprefix("/api/").strip("/"), query, body)
        elif path.startswith("/upload/") and self.command == "POST":
            ok = self._emulator.receive_upload(path.removeprefix("/upload/").strip("/"), body)
            self._send(200 if ok else 404, {"ok": ok})
        elif path.startswith("/response/") and self.command == "POST":
            self._response_url(path.removeprefix("/response/").strip("/"), body)
        elif path == "/_emulator/messages":
            since = self._since(query)
            if since is not None:
                self._send(200, self._emulator.messages_json(query.get("channel") or None, since))
        elif path == "/_emulator/events":
            since = self._since(query)
            if since is not None:
                self._send(200, self._emulator.events_json(since))
        else:
            self._send(404, {"ok": False, "error": "not_found"})

    def _api(self, method: str, query: dict[str, str], body: bytes) -> None:
        params: JSON = _decode_form(query.items())
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        try:
            if content_type == "application/json" and body:
                decoded = json.loads(body)
                if not isinstance(decoded, dict):
                    raise ValueError("JSON body is not an object")
                params.update(decoded)
            elif body:
                # slack_sdk sends form bodies without always labelling them; form is the default.
                params.update(_decode_form(parse_qsl(body.decode(), keep_blank_values=True)))
        except (ValueError, UnicodeDecodeError):
            self._send(200, self._emulator.reject_api_call(method, "invalid_json"))
            return
        token = self._bearer_token() or _opt_str(params.get("token"))
        status, answer, headers = self._emulator.handle_api(method, params, token)
        self._send(status, answer, headers)

    def _response_url(self, token: str, body: bytes) -> None:
        try:
            payload = json.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("JSON body is not an object")
        except (ValueError, UnicodeDecodeError):
            self._send(400, {"ok": False, "error": "invalid_payload"})
            return
        status, answer, headers = self._emulator.handle_response_url(token, payload)
        self._send(status, answer, headers)

    def _since(self, query: dict[str, str]) -> int | None:
        try:
            since = int(query.get("since", "0") or "0")
        except ValueError:
            since = -1
        if since < 0:
            self._send(400, {"ok": False, "error": "invalid_since"})
            return None
        return since

    def _bearer_token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: JSON, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        # The sandbox's web page may be served from another port and polls the read-only views.
        self.send_header("Access-Control-Allow-Origin", "*")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
