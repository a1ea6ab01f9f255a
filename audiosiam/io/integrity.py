"""Is the file whole? Irregular paths (folders, devices, pipes), unreadable files, and files cut off in
transfer (WAV, Ogg and FLAC: their headers promise more than their bytes hold), each named with what to do."""

from __future__ import annotations

import functools
import os
import struct

from ..errors import (
    AudioLoadError,
    EmptyAudioError,
    NotRegularFileError,
)
from ..paths import as_path, not_a_regular_file


def _wav_is_truncated(path: str) -> bool:
    """True when a RIFF/WAVE file declares more sample data than it holds.

    libsndfile quietly reads what is there, so a half-copied WAV would otherwise pass as a shorter clip.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            header = handle.read(12)
            if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                return False
            while True:
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return False
                chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if chunk_id == b"data":
                    # 0 and 0xFFFFFFFF mean "size unknown" (streamed writers); not a truncation.
                    return chunk_size not in (0, 0xFFFFFFFF) and handle.tell() + chunk_size > size
                handle.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)
    except OSError:
        return False


_IRREGULAR_HINTS = {
    "missing": "check the path and that the file was copied completely",
    "folder": "pass the files inside it, or a folder where a folder is expected",
    "special": "give the audio file itself: a pipe or a device may block forever or never end",
    "unreachable": "fix the link or the permissions of the folders on its path",
}


def _irregular(path_str: str) -> AudioLoadError | None:
    """The error for a path that names no regular file (missing, a folder, a FIFO, a device, a link loop)."""
    found = not_a_regular_file(path_str)
    if found is None:
        return None
    kind, words = found
    return (NotRegularFileError if kind == "special" else AudioLoadError)(path_str, words, _IRREGULAR_HINTS[kind])


def _regular_file(path: str | os.PathLike) -> str:
    """``path`` as a string once it is known to name a regular file: the one check every reader makes before
    opening (opening a FIFO blocks until a writer comes, reading a device never ends).

    Raises:
        AudioLoadError: missing, a folder, a link loop; :class:`~audiosiam.errors.NotRegularFileError` for a
            pipe, device or socket, also behind symbolic links.
        ParameterError: not a path at all (a number, ``None``).
    """
    path_str = as_path(path)
    error = _irregular(path_str)
    if error is not None:
        raise error
    return path_str


def _unreadable(path_str: str, exc: Exception) -> AudioLoadError:
    """The error for a file libsndfile could not open: gone since it was checked, empty, or not audio."""
    error = _irregular(path_str)
    if error is not None:
        return error
    if os.path.getsize(path_str) == 0:
        return EmptyAudioError(path_str, "is an empty file (0 bytes)", "copy or export it again")
    cut = _cut_off(path_str, decode_failed=True)
    if cut is not None:
        return AudioLoadError(path_str, cut, "copy or download the file again")
    detail = str(exc).replace(f"Error opening {path_str!r}: ", "").strip().rstrip(".")  # the path is said once
    if "does not exist or is not a regular file" in detail:  # libsndfile's words for content it cannot parse
        detail = "its content is damaged or in no format libsndfile knows"
    return AudioLoadError(
        path_str,
        f"not a readable audio file ({detail})",
        "supported: WAV, FLAC, OGG/Vorbis, MP3, AIFF; re-export or convert it (e.g. with sox or ffmpeg)",
    )


def _cut_off(path_str: str, decode_failed: bool = False) -> str | None:
    """How an Ogg or FLAC file shows it was cut off, from its container (``None``: it does not, or it is
    neither). Ogg: its last page is cut, or lacks the end-of-stream flag every complete Ogg stream ends with
    (libsndfile decodes such a file as a shorter clip). FLAC (asked once decoding failed, ``decode_failed``):
    its last frame starts short of the length its STREAMINFO announces, or is incomplete (its CRC-16)."""
    try:
        with open(path_str, "rb") as handle:
            magic = handle.read(4)
            if magic == b"OggS":
                return _ogg_cut_off(handle)
            if magic == b"fLaC" and decode_failed:
                return _flac_cut_off(handle)
    except OSError:
        pass
    return None


def _ogg_cut_off(handle) -> str | None:
    size = handle.seek(0, os.SEEK_END)
    start = max(0, size - 65_307 - 27)  # the longest Ogg page, so the tail holds the last page's start
    handle.seek(start)
    tail = handle.read()
    at = len(tail)
    while (at := tail.rfind(b"OggS", 0, at)) >= 0:
        if at + 27 > len(tail) or tail[at + 4] != 0 or tail[at + 5] > 7:  # not a page header (version 0, flags)
            continue
        segments = tail[at + 26]
        table = tail[at + 27 : at + 27 + segments]
        end = at + 27 + segments + sum(table)
        if len(table) < segments or end > len(tail):
            return f"truncated: its last Ogg page is cut off ({start + at:,} bytes in, the file ends at {size:,})"
        if not tail[at + 5] & 0x04:
            return "truncated: its last Ogg page lacks the end-of-stream mark (the rest of the stream is missing)"
        return None
    return None


def _flac_cut_off(handle) -> str | None:
    handle.seek(4)
    header = handle.read(4 + 34)
    if len(header) < 38 or header[0] & 0x7F != 0:  # STREAMINFO comes first
        return None
    info = int.from_bytes(header[4:], "big")
    max_block = (info >> 240) & 0xFFFF  # the fields from the top: block sizes (16, 16), frame sizes (24, 24),
    max_frame = (info >> 192) & 0xFFFFFF  # rate (20), channels (3), bits (5), total samples (36), MD5 (128)
    rate = (info >> 172) & 0xFFFFF
    total = (info >> 128) & 0xFFFFFFFFF
    if total == 0 or rate == 0:  # a stream that announces no length
        return None
    size = handle.seek(0, os.SEEK_END)
    reach = min(max_frame or 1 << 20, 1 << 20)
    start = max(0, size - 3 * reach - 16)  # the tail holds the last two frames whole, and the cut one
    handle.seek(start)
    tail = handle.read()
    # Frame headers in the tail (bytes of audio can pass for one, CRC-8 and all, 1 in 256 times): the last
    # real one is the later of two consecutive frames whose numbering and CRC-16 agree.
    found, at = [], -1
    while (at := tail.find(b"\xff", at + 1)) >= 0:
        frame = _flac_frame_header(tail, at, max_block)
        if frame is not None:
            found.append((at, *frame))
    last = None
    for i in range(len(found) - 1, -1, -1):
        at, first, samples = found[i]
        for later in found[i + 1 :]:
            crc = int.from_bytes(tail[later[0] - 2 : later[0]], "big")
            if later[1] == first + samples and _crc16(tail[at : later[0] - 2]) == crc:
                last = later
                break
        if last is not None:
            break
    if last is None:
        return None
    at, first, samples = last
    if _crc16(tail[at:-2]) == int.from_bytes(tail[-2:], "big") and first + samples >= total:
        return None  # the last frame, whole
    return f"truncated: it ends in its frame at {first / rate:.1f} s of the {total / rate:.1f} s its header announces"


def _flac_frame_header(data: bytes, at: int, max_block: int) -> tuple[int, int] | None:
    """``(first sample, samples)`` of the FLAC frame whose header starts at ``data[at]``, or ``None`` where
    no valid header (its CRC-8 checked) starts there."""
    if at + 6 > len(data) or data[at + 1] & 0xFE != 0xF8:
        return None
    variable, size_code, rate_code = data[at + 1] & 1, data[at + 2] >> 4, data[at + 2] & 0x0F
    if size_code == 0 or rate_code == 15:
        return None
    lead = data[at + 4]  # the frame (or sample) number, UTF-8 coded
    extra = 0 if lead < 0x80 else next((n for n in range(1, 7) if lead < (0xFF00 >> (n + 1)) & 0xFF), None)
    if extra is None or at + 5 + extra > len(data):
        return None
    number = lead & (0x7F >> extra if extra else 0x7F)
    for byte in data[at + 5 : at + 5 + extra]:
        if byte & 0xC0 != 0x80:
            return None
        number = number << 6 | byte & 0x3F
    pos = at + 5 + extra
    if size_code == 1:
        samples = 192
    elif size_code <= 5:
        samples = 576 << (size_code - 2)
    elif size_code <= 7:
        width = size_code - 5
        samples = int.from_bytes(data[pos : pos + width], "big") + 1
        pos += width
    else:
        samples = 256 << (size_code - 8)
    pos += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if pos >= len(data) or _crc8(data[at:pos]) != data[pos]:
        return None
    return (number if variable else number * max_block), samples


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


@functools.lru_cache(maxsize=1)
def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


def _crc16(data: bytes) -> int:
    """FLAC's frame CRC-16 (polynomial 0x8005)."""
    table, crc = _crc16_table(), 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


TRUNCATION_FRACTION = 0.9


class _Truncated(Exception):
    """Raised inside the reader; load_audio turns it into an AudioLoadError naming the file."""
