"""The Slack app manifest is valid for Slack and declares what the bot relies on."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_PATH = PROJECT_ROOT / "app_manifest.yml"
SCHEMA_PATH = PROJECT_ROOT.parent / "shared" / "slack" / "manifest.schema.1.0.0.json"

REQUIRED_BOT_EVENTS = {
    "message.im",
    "app_mention",
    "app_home_opened",
    "message.channels",
    "message.groups",
}

# Scopes Slack demands before it delivers each event; an event without its scope never arrives.
SCOPES_FOR_EVENT = {
    "message.im": {"im:history"},
    "message.channels": {"channels:history"},
    "message.groups": {"groups:history"},
    "message.mpim": {"mpim:history"},
    "app_mention": {"app_mentions:read"},
    "app_home_opened": set(),
}

# Scopes the bot uses through the Web API and slash commands.
SCOPES_USED_BY_BOT = {
    "commands",
    "chat:write",
    "chat:write.public",
    "im:history",
    "im:write",
    "im:read",
    "app_mentions:read",
    "users:read",
    "users:read.email",
    "channels:history",
    "groups:history",
}

HTTP_URL = "https://example.com/slack/events"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    with MANIFEST_PATH.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    if not SCHEMA_PATH.is_file():
        pytest.skip(
            "Slack's manifest schema is not beside the checkout (../shared/slack); CI has it"
        )
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def schema_errors(validator: Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def vm_command(manifest: dict[str, Any]) -> dict[str, Any]:
    commands = manifest["features"]["slash_commands"]
    matches = [c for c in commands if c["command"] == "/vm"]
    assert len(matches) == 1, f"expected exactly one /vm command, got {commands}"
    return matches[0]


def bot_scopes(manifest: dict[str, Any]) -> list[str]:
    return manifest["oauth_config"]["scopes"]["bot"]


def test_manifest_matches_slacks_schema(validator: Draft7Validator, manifest: dict[str, Any]):
    assert schema_errors(validator, manifest) == []


def test_http_mode_variant_matches_slacks_schema(
    validator: Draft7Validator, manifest: dict[str, Any]
):
    # The header tells users how to switch to HTTP mode; that variant must be valid too.
    http = copy.deepcopy(manifest)
    http["settings"]["socket_mode_enabled"] = False
    http["settings"]["event_subscriptions"]["request_url"] = HTTP_URL
    http["settings"]["interactivity"]["request_url"] = HTTP_URL
    vm_command(http)["url"] = HTTP_URL
    assert schema_errors(validator, http) == []


@pytest.mark.parametrize(
    ("mutate", "expected_path"),
    [
        pytest.param(lambda m: m.update(unknown_top_level_key=True), "<root>", id="unknown-key"),
        pytest.param(
            lambda m: m["features"]["bot_user"].update(always_online="yes"),
            "features/bot_user/always_online",
            id="wrong-type",
        ),
        pytest.param(
            lambda m: m["features"]["slash_commands"][0].update(command="vm"),
            "features/slash_commands/0/command",
            id="command-without-slash",
        ),
        pytest.param(
            lambda m: m["settings"]["interactivity"].pop("is_enabled"),
            "settings/interactivity",
            id="missing-required",
        ),
    ],
)
def test_schema_rejects_a_broken_manifest(
    validator: Draft7Validator, manifest: dict[str, Any], mutate, expected_path: str
):
    broken = copy.deepcopy(manifest)
    mutate(broken)
    errors = schema_errors(validator, broken)
    assert errors, "the validator accepted a deliberately broken manifest"
    assert any(e.startswith(f"{expected_path}: ") for e in errors), errors


def test_names(manifest: dict[str, Any]):
    assert manifest["display_information"]["name"] == "vm-creator"
    bot_user = manifest["features"]["bot_user"]
    assert bot_user["display_name"] == "vmbot"
    assert bot_user["always_online"] is True


def test_vm_slash_command(manifest: dict[str, Any]):
    command = vm_command(manifest)
    assert command["description"].strip()
    # Unquoted, "[what you need] | ..." would parse as a YAML list, not a hint.
    assert isinstance(command["usage_hint"], str)
    for word in ("list", "help"):
        assert word in command["usage_hint"]
    # `/vm admin role @user ROLE` needs mentions as user ids (<@U123|name>).
    assert command["should_escape"] is True


def test_bot_events_are_subscribed(manifest: dict[str, Any]):
    bot_events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert REQUIRED_BOT_EVENTS <= set(bot_events)


def test_every_subscribed_event_has_its_scope(manifest: dict[str, Any]):
    scopes = set(bot_scopes(manifest))
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        assert event in SCOPES_FOR_EVENT, f"add the scopes {event} needs to SCOPES_FOR_EVENT"
        missing = SCOPES_FOR_EVENT[event] - scopes
        assert not missing, f"{event} needs bot scopes {sorted(missing)}"


def test_bot_scopes_cover_what_the_bot_uses(manifest: dict[str, Any]):
    scopes = bot_scopes(manifest)
    assert len(scopes) == len(set(scopes)), f"duplicate scopes in {scopes}"
    missing = SCOPES_USED_BY_BOT - set(scopes)
    assert not missing, f"missing bot scopes {sorted(missing)}"


def test_socket_mode_and_interactivity(manifest: dict[str, Any]):
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True


def test_app_home_tabs(manifest: dict[str, Any]):
    app_home = manifest["features"]["app_home"]
    assert app_home["home_tab_enabled"] is True
    assert app_home["messages_tab_enabled"] is True
    assert app_home["messages_tab_read_only_enabled"] is False


def test_manifest_names_no_local_paths():
    text = MANIFEST_PATH.read_text(encoding="utf-8")
    for fragment in ("/work/", "/home/", "/tmp/", "file://", "../"):
        assert fragment not in text
