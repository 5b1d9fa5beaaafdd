"""The advisor turns a plain-language request into a VmSpec.

`rules.RulesAdvisor` is the default; an LLM-backed advisor implements the same protocol.
"""

from __future__ import annotations

from typing import Protocol

from provisioning.spec import VmSpec

__all__ = ["Advisor", "AdvisorError"]


class AdvisorError(Exception):
    """The request can't be turned into a VM. The message is a sentence the user can act on."""


class Advisor(Protocol):
    def suggest(self, text: str) -> VmSpec:
        """Return a valid, priced VmSpec for `text`, or raise AdvisorError saying why not.

        Request text is only ever parsed into catalog names and bounded numbers; it is never
        copied into the spec.
        """
        ...
