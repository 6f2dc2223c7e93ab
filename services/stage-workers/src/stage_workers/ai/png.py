"""A small PNG encoder (RGB, 8 bit, zlib) and a deterministic picture drawn from a prompt."""

from __future__ import annotations

import hashlib
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_png(width: int, height: int, rows: list[bytes]) -> bytes:
    """`rows` are `height` rows of `width * 3` RGB bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # Filter type 0 (none) before every row.
    raw = b"".join(b"\x00" + row for row in rows)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def draw_from_prompt(prompt: str, width: int = 256, height: int = 160) -> bytes:
    """A two-colour gradient with discs placed by the prompt's hash: same prompt, same image."""
    seed = hashlib.sha256(prompt.encode()).digest()
    top, bottom = seed[0:3], seed[3:6]
    discs = [
        (
            seed[6 + 4 * i] * width // 256,
            seed[7 + 4 * i] * height // 256,
            12 + seed[8 + 4 * i] % 30,
            bytes(255 - c for c in seed[9 + 4 * i : 12 + 4 * i]),
        )
        for i in range(5)
    ]
    rows = []
    for y in range(height):
        mix = y / max(1, height - 1)
        background = bytes(round(a * (1 - mix) + b * mix) for a, b in zip(top, bottom, strict=True))
        row = bytearray(background * width)
        for cx, cy, radius, colour in discs:
            dy = y - cy
            if abs(dy) > radius:
                continue
            half = int((radius * radius - dy * dy) ** 0.5)
            first, end = max(0, cx - half), min(width, cx + half + 1)
            if end > first:
                row[3 * first : 3 * end] = colour * (end - first)
        rows.append(bytes(row))
    return encode_png(width, height, rows)
