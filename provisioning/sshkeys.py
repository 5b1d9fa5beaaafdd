"""SSH public keys as users paste them: checked, measured and fingerprinted.

`parse_public_key` accepts one OpenSSH public key line (`type base64 [comment]`), decodes the key
blob and reads its wire format (RFC 4253 section 6.6, RFC 5656, RFC 8709), so a key that is cut
off, of the wrong type or too weak is refused with a message saying what to paste instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from provisioning.errors import DomainError

MIN_RSA_BITS = 3072
MAX_KEY_CHARS = 16_384

_ECDSA_BITS = {"nistp256": 256, "nistp384": 384, "nistp521": 521}
# An uncompressed point: 0x04, then x and y, each as wide as the curve.
_ECDSA_POINT_BYTES = {curve: 1 + 2 * ((bits + 7) // 8) for curve, bits in _ECDSA_BITS.items()}
ACCEPTED_TYPES = ("ssh-ed25519", *(f"ecdsa-sha2-{c}" for c in _ECDSA_BITS), "ssh-rsa")
_KNOWN_TYPE = re.compile(r"(sk-)?(ssh|ecdsa)-[a-z0-9-]+(@openssh\.com)?")
_HOW_TO_MAKE = "create one with `ssh-keygen -t ed25519` and paste the .pub file"


class InvalidKey(DomainError):
    """The pasted text is not an acceptable SSH public key; the message says what to paste."""


@dataclass(frozen=True)
class PublicKey:
    type: str  # e.g. "ssh-ed25519"
    bits: int
    fingerprint_sha256: str  # as `ssh-keygen -l` prints it: "SHA256:" + unpadded base64
    comment: str
    normalized_line: str  # "type base64 [comment]", single-spaced, for authorized_keys


def parse_public_key(text: str) -> PublicKey:
    """Parse one OpenSSH public key line, or raise InvalidKey saying what is wrong."""
    text = text.strip()
    if not text:
        raise InvalidKey(f"Paste your SSH public key, e.g. ~/.ssh/id_ed25519.pub; {_HOW_TO_MAKE}.")
    if "PRIVATE KEY" in text or text.startswith("PuTTY-User-Key-File"):
        raise InvalidKey(
            "That looks like a PRIVATE key — never paste it anywhere; paste the .pub file instead."
        )
    if len(text) > MAX_KEY_CHARS:
        raise InvalidKey("That is far too long for an SSH public key; paste one line from a .pub.")
    if text.startswith("---- BEGIN SSH2 PUBLIC KEY"):
        raise InvalidKey(
            "That is an SSH2 (RFC 4716) key; convert it with `ssh-keygen -i -f KEYFILE` "
            "and paste the one-line result."
        )
    lines = text.splitlines()
    if len(lines) > 1:
        raise InvalidKey(
            f"Paste one key on a single line; this has {len(lines)} lines. If your terminal "
            "wrapped it, copy it again from the .pub file."
        )
    fields = text.split()
    key_type = fields[0]
    if not _KNOWN_TYPE.fullmatch(key_type):
        if any(_KNOWN_TYPE.fullmatch(f) for f in fields[1:]):
            raise InvalidKey(
                "Remove the options in front of the key type (like from=… or command=…); "
                "paste just the key, as it is in your .pub file."
            )
        raise InvalidKey(
            "That isn't an SSH public key; it should start with ssh-ed25519, ecdsa-sha2-nistp256 "
            f"or ssh-rsa. {_HOW_TO_MAKE.capitalize()}."
        )
    if key_type == "ssh-dss":
        raise InvalidKey(f"DSA keys are insecure and no longer accepted; {_HOW_TO_MAKE}.")
    if key_type not in ACCEPTED_TYPES:
        raise InvalidKey(
            f"{key_type} keys aren't supported; use ssh-ed25519, ecdsa-sha2-nistp256/384/521 "
            f"or ssh-rsa of {MIN_RSA_BITS} bits or more ({_HOW_TO_MAKE})."
        )
    if len(fields) < 2:
        raise InvalidKey(f"The key stops after {key_type}; paste the whole line.")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey(_DAMAGED) from None
    bits = _key_bits(key_type, blob)
    comment = " ".join(fields[2:])
    encoded = base64.b64encode(blob).decode("ascii")
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return PublicKey(
        type=key_type,
        bits=bits,
        fingerprint_sha256=f"SHA256:{digest}",
        comment=comment,
        normalized_line=f"{key_type} {encoded} {comment}".rstrip(),
    )


_DAMAGED = (
    "The key data is damaged (it may have been cut off or changed while copying); "
    "paste the whole line from your .pub file again."
)


def _key_bits(key_type: str, blob: bytes) -> int:
    reader = _WireReader(blob)
    inner_type = reader.string().decode("ascii", errors="replace")
    if inner_type != key_type:
        raise InvalidKey(
            f"The line says {key_type} but the key data is {inner_type or 'something else'}; "
            "paste the line from your .pub file unchanged."
        )
    if key_type == "ssh-ed25519":
        if len(reader.string()) != 32:
            raise InvalidKey(_DAMAGED)
        bits = 256
    elif key_type == "ssh-rsa":
        exponent, modulus = reader.mpint(), reader.mpint()
        if exponent < 3 or exponent % 2 == 0 or modulus <= 0:
            raise InvalidKey(_DAMAGED)
        bits = modulus.bit_length()
        if bits < MIN_RSA_BITS:
            raise InvalidKey(
                f"This RSA key has {bits} bits; at least {MIN_RSA_BITS} are needed. "
                f"Better still, {_HOW_TO_MAKE}."
            )
    else:
        curve = key_type.removeprefix("ecdsa-sha2-")
        if reader.string() != curve.encode() or len(reader.string()) != _ECDSA_POINT_BYTES[curve]:
            raise InvalidKey(_DAMAGED)
        bits = _ECDSA_BITS[curve]
    if not reader.at_end():
        raise InvalidKey(_DAMAGED)
    return bits


class _WireReader:
    """Reads the SSH wire types (RFC 4251 section 5) from a blob, raising InvalidKey on overrun."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def string(self) -> bytes:
        if self._at + 4 > len(self._data):
            raise InvalidKey(_DAMAGED)
        (length,) = struct.unpack_from(">I", self._data, self._at)
        start, end = self._at + 4, self._at + 4 + length
        if end > len(self._data):
            raise InvalidKey(_DAMAGED)
        self._at = end
        return self._data[start:end]

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def at_end(self) -> bool:
        return self._at == len(self._data)
