"""Secret variables are encrypted exactly as NocoBase's AesEncryptor does.

The cross-check runs Node.js's own crypto with the algorithm and encoding NocoBase
2.2.15 uses (``aes-256-cbc``, ``hex(iv) + hex(ciphertext)``); booting NocoBase on
values Ferry wrote is part of the real-NocoBase tier.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from controller.engine.nocobase_secrets import decrypt, encrypt, parse_key
from controller.errors import InvalidInput

KEY = bytes(range(32))
IV = bytes(range(100, 116))

NODE_DECRYPT = """
const crypto = require('crypto');
const [key, text] = process.argv.slice(1);
const iv = Buffer.from(text.slice(0, 32), 'hex');
const d = crypto.createDecipheriv('aes-256-cbc', Buffer.from(key, 'hex'), iv);
process.stdout.write(Buffer.concat([d.update(Buffer.from(text.slice(32), 'hex')), d.final()])
  .toString('utf8'));
"""
NODE_ENCRYPT = """
const crypto = require('crypto');
const [key, text] = process.argv.slice(1);
const iv = crypto.randomBytes(16);
const c = crypto.createCipheriv('aes-256-cbc', Buffer.from(key, 'hex'), iv);
process.stdout.write(iv.toString('hex') + Buffer.concat([c.update(Buffer.from(text, 'utf8')),
  c.final()]).toString('hex'));
"""


def _node(script: str, *args: str) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is required for this cross-check (it is on every Ferry dev machine)")
    return subprocess.run(
        [node, "-e", script, *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.mark.parametrize("secret", ["s3cr3t", "", "ünïcødé 🚀 " * 5, "x" * 16])
def test_round_trip_and_node_agree(secret: str) -> None:
    stored = encrypt(KEY, secret, IV)
    assert stored.startswith(IV.hex()) and len(stored) % 32 == 0
    assert decrypt(KEY, stored) == secret
    assert _node(NODE_DECRYPT, KEY.hex(), stored) == secret
    from_node = _node(NODE_ENCRYPT, KEY.hex(), secret)
    assert decrypt(KEY, from_node) == secret


def test_wrong_key_gives_none() -> None:
    stored = encrypt(KEY, "value", IV)
    assert decrypt(bytes(32), stored) != "value"
    assert decrypt(KEY, "not-hex") is None


def test_key_parsing() -> None:
    assert parse_key(os.urandom(32).hex()) and len(parse_key(KEY.hex())) == 32
    with pytest.raises(InvalidInput, match="32 bytes"):
        parse_key("abcd")
    with pytest.raises(InvalidInput, match="hex"):
        parse_key("zz" * 32)
