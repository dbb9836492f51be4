# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""OpenPGP public keys as Flatpak remotes carry them (``--gpg-import`` files, a ``.flatpakrepo``'s ``GPGKey``, the
``repo/REMOTE.trustedkeys.gpg`` keyrings): ASCII armour undone and each primary key's fingerprint computed
(RFC 4880 and RFC 9580), so that keys compare as data and never show up whole in a diff.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import base64
import hashlib
import struct

from ansible_collections.immutable.hosts.plugins.module_utils.common._text import split_lines
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak._names import FlatpakError

_ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"


def is_armored(text) -> bool:
    return isinstance(text, str) and text.lstrip().startswith("-----BEGIN PGP")


def dearmor(text: str) -> bytes:
    lines = split_lines(text.strip())
    if not lines or lines[0].strip() != _ARMOR_BEGIN:
        raise FlatpakError("not an ASCII-armoured OpenPGP public key block (it must begin with %s)" % _ARMOR_BEGIN)
    body, in_body = [], False
    for line in lines[1:]:
        line = line.strip()
        if line.startswith("-----END PGP"):
            break
        if not in_body:
            if not line:
                in_body = True
            elif ":" not in line:
                in_body = True
                body.append(line)
            continue
        if line.startswith("="):
            break
        body.append(line)
    try:
        return base64.b64decode("".join(body), validate=True)
    except ValueError:
        raise FlatpakError("the ASCII-armoured GPG key is not valid base64") from None


def _packets(data: bytes):
    """OpenPGP packets (RFC 4880 section 4.2) as (tag, body); malformed or truncated data is a FlatpakError."""
    pos = 0
    while pos < len(data):
        header = data[pos]
        if not header & 0x80:
            raise FlatpakError("not OpenPGP key data (bad packet header at byte %d)" % pos)
        if header & 0x40:
            tag = header & 0x3F
            if pos + 1 >= len(data):
                raise FlatpakError("truncated OpenPGP key data")
            first = data[pos + 1]
            if first < 192:
                length, pos = first, pos + 2
            elif first < 224:
                if pos + 2 >= len(data):
                    raise FlatpakError("truncated OpenPGP key data")
                length, pos = ((first - 192) << 8) + data[pos + 2] + 192, pos + 3
            elif first == 255:
                if pos + 6 > len(data):
                    raise FlatpakError("truncated OpenPGP key data")
                length, pos = struct.unpack_from(">I", data, pos + 2)[0], pos + 6
            else:
                raise FlatpakError("OpenPGP partial body lengths do not occur in keys")
        else:
            tag, length_type = (header >> 2) & 0x0F, header & 0x03
            if length_type == 3:
                length, pos = len(data) - pos - 1, pos + 1
            else:
                size = 1 << length_type
                if pos + 1 + size > len(data):
                    raise FlatpakError("truncated OpenPGP key data")
                length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
                pos += 1 + size
        if pos + length > len(data):
            raise FlatpakError("truncated OpenPGP key data")
        yield tag, data[pos : pos + length]
        pos += length


def key_fingerprints(data) -> list:
    """Fingerprints of the primary public keys in OpenPGP data (binary or ASCII armour), in order."""
    if isinstance(data, str):
        data = dearmor(data)
    fingerprints = []
    try:
        for tag, body in _packets(data):
            if tag == 5:
                raise FlatpakError("the GPG key is a SECRET key; give the public key (gpg --export, not --export-secret-keys)")
            if tag != 6 or not body:
                continue
            version = body[0]
            if version == 4 and len(body) > 0xFFFF:
                raise FlatpakError("not OpenPGP key data (a version 4 key packet of %d bytes)" % len(body))
            if version == 4:
                digest = hashlib.sha1(b"\x99" + struct.pack(">H", len(body)) + body).hexdigest()  # noqa: S324 - RFC 4880
            elif version in (5, 6):
                digest = hashlib.sha256(bytes([0x95 + version]) + struct.pack(">I", len(body)) + body).hexdigest()
            else:
                raise FlatpakError("OpenPGP version %d keys are not supported" % version)
            fingerprints.append(digest.upper())
    except IndexError:
        raise FlatpakError("truncated OpenPGP key data") from None
    if not fingerprints:
        raise FlatpakError("no OpenPGP public key found in the GPG key data")
    return fingerprints
