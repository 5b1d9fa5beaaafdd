"""SSH public keys: accepted types, sizes and fingerprints, and every way a paste can go wrong.

Keys are generated here (private halves never leave the test); the two fixed vectors are public keys
whose fingerprints OpenSSH's `ssh-keygen -l` printed.
"""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from provisioning.errors import DomainError
from provisioning.sshkeys import InvalidKey, PublicKey, parse_public_key

ED25519_LINE = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPbF2YWdfgY7g5mKiw1nVS2TpnARDPXqmcSzD9VOtGlT"
    " ada@example.com"
)
RSA_3072_LINE = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC+gJjSAQYvBRUuDM5ZCVwrRZN/GPwtxfvOkwd9pZnTc3aQWkes5Qe5bB"
    "SNFHPnlAUU4AWgyHP0oJxs+Xcd6V2nqqvP1ex+Y6jCVZdHputi40dBq3JIHOQR4YJuhb8kp0dHyATSdp3PT2Fv7Ao0DRRY"
    "C2IXE/GHG/oS+A+KqOxLmXIb+x5dqWDydqBmJdjYxjJPyALYoIBpzHw9bB79o0UaCaHcvyMq4Lu+TOc0qAtNmlHlzcFh6T"
    "CoLrMSTilLaIDBAiSfm9EzziRWaKETcsjOAAFD0XDBKDc/Ld/r49P1CNcGY/tdd6McldySM/JveVaD699RQBKQHB0w2DLA"
    "GVkdsz7Zp8hs+yEuHRF3qqm20ROdLoq+RLWtuN2GBRhIOebAqXN8XFLbn5Lbv/Z3bFw7Vk+ciO6Ei4OAC6ei/z6/ZudHrL"
    "01khfS+p+0OFGUHh92YWbCg9G/7zitfRmg5HpdVJr4No4mE55j6M+Y2mxtgR/cftvzzpQVix3WxxFDecM= rsa-vector"
)


def test_fingerprints_match_openssh() -> None:
    assert parse_public_key(ED25519_LINE) == PublicKey(
        type="ssh-ed25519",
        bits=256,
        fingerprint_sha256="SHA256:KSgXSr1WaQjS8tr8gvl/RQMbzPkHfcA7GJnPP+FspbY",
        comment="ada@example.com",
        normalized_line=ED25519_LINE,
    )
    key = parse_public_key(RSA_3072_LINE)
    assert (key.type, key.bits, key.fingerprint_sha256, key.comment) == (
        "ssh-rsa",
        3072,
        "SHA256:thfaLs0I7zMBouZ1VQ0mtZysi0NaTCtRNt0Yf68sPkM",
        "rsa-vector",
    )


def _openssh(public_key: object) -> str:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


@pytest.mark.parametrize(
    ("make", "key_type", "bits"),
    [
        (lambda: ed25519.Ed25519PrivateKey.generate(), "ssh-ed25519", 256),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ecdsa-sha2-nistp256", 256),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ecdsa-sha2-nistp384", 384),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "ecdsa-sha2-nistp521", 521),
        (lambda: rsa.generate_private_key(65537, 3072), "ssh-rsa", 3072),
        (lambda: rsa.generate_private_key(65537, 4096), "ssh-rsa", 4096),
    ],
)
def test_accepts_generated_keys(make, key_type: str, bits: int) -> None:
    line = _openssh(make().public_key())
    key = parse_public_key(f"  {line}   me@laptop  work \n")
    assert (key.type, key.bits, key.comment) == (key_type, bits, "me@laptop work")
    assert key.normalized_line == f"{line} me@laptop work"
    assert key.fingerprint_sha256.startswith("SHA256:") and "=" not in key.fingerprint_sha256
    assert parse_public_key(line).comment == ""


def _blob(*parts: bytes) -> str:
    return base64.b64encode(b"".join(struct.pack(">I", len(p)) + p for p in parts)).decode()


ED25519_BLOB = ED25519_LINE.split()[1]
SHORT_RSA = _openssh(rsa.generate_private_key(65537, 2048).public_key())
PRIVATE = "That looks like a PRIVATE key — never paste it anywhere; paste the .pub file instead."
DAMAGED = (
    "The key data is damaged (it may have been cut off or changed while copying); "
    "paste the whole line from your .pub file again."
)
MAKE = "create one with `ssh-keygen -t ed25519` and paste the .pub file"


def _private_pem(fmt: serialization.PrivateFormat) -> str:
    key = (
        rsa.generate_private_key(65537, 2048)
        if fmt is not serialization.PrivateFormat.OpenSSH
        else (ed25519.Ed25519PrivateKey.generate())
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", f"Paste your SSH public key, e.g. ~/.ssh/id_ed25519.pub; {MAKE}."),
        (_private_pem(serialization.PrivateFormat.OpenSSH), PRIVATE),
        (_private_pem(serialization.PrivateFormat.PKCS8), PRIVATE),
        (_private_pem(serialization.PrivateFormat.TraditionalOpenSSL), PRIVATE),
        ("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none", PRIVATE),
        (
            "ssh-dss " + _blob(b"ssh-dss", b"\x00p", b"\x00q", b"\x00g", b"\x00y"),
            f"DSA keys are insecure and no longer accepted; {MAKE}.",
        ),
        (
            SHORT_RSA,
            f"This RSA key has 2048 bits; at least 3072 are needed. Better still, {MAKE}.",
        ),
        (
            f"{ED25519_LINE}\n{RSA_3072_LINE}",
            "Paste one key on a single line; this has 2 lines. If your terminal wrapped it, "
            "copy it again from the .pub file.",
        ),
        (
            f'from="10.0.0.0/8",no-pty {ED25519_LINE}',
            "Remove the options in front of the key type (like from=… or command=…); "
            "paste just the key, as it is in your .pub file.",
        ),
        (
            "hello world",
            "That isn't an SSH public key; it should start with ssh-ed25519, ecdsa-sha2-nistp256 "
            f"or ssh-rsa. {MAKE.capitalize()}.",
        ),
        (
            "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----",
            "That is an SSH2 (RFC 4716) key; convert it with `ssh-keygen -i -f KEYFILE` "
            "and paste the one-line result.",
        ),
        (
            "sk-ssh-ed25519@openssh.com AAAA",
            "sk-ssh-ed25519@openssh.com keys aren't supported; use ssh-ed25519, "
            "ecdsa-sha2-nistp256/384/521 or ssh-rsa of 3072 bits or more "
            f"({MAKE}).",
        ),
        ("ssh-ed25519", "The key stops after ssh-ed25519; paste the whole line."),
        ("ssh-ed25519 not*base64!", DAMAGED),
        (f"ssh-ed25519 {ED25519_BLOB[:40]}", DAMAGED),  # cut off while copying
        (f"ssh-ed25519 {_blob(b'ssh-ed25519', bytes(31))}", DAMAGED),
        (f"ssh-ed25519 {_blob(b'ssh-ed25519', bytes(32), b'extra')}", DAMAGED),
        (
            f"ssh-rsa {ED25519_BLOB}",
            "The line says ssh-rsa but the key data is ssh-ed25519; "
            "paste the line from your .pub file unchanged.",
        ),
        (
            f"ecdsa-sha2-nistp384 {_blob(b'ecdsa-sha2-nistp384', b'nistp256', bytes(65))}",
            DAMAGED,
        ),
        ("x" * 20_000, "That is far too long for an SSH public key; paste one line from a .pub."),
    ],
)
def test_rejects_with_a_message_saying_what_to_paste(text: str, message: str) -> None:
    with pytest.raises(InvalidKey) as raised:
        parse_public_key(text)
    assert str(raised.value) == message
    assert isinstance(raised.value, DomainError)
