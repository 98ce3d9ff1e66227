"""Reading a recording file, which is untrusted input (recordings are attached to bug reports).

Only a regular file is read (a FIFO or a device is refused, no symbolic link followed), and only the very file
first opened. Decompression hands out at most OUT_CHUNK bytes at a time; a file inflating past MAX_RATIO is read
no further; a record is at most MAX_RECORD bytes. Damage raises :class:`Corrupt` naming the segment it is in, a
file cut short :class:`Truncated`: the index (:mod:`.index`) decides what of the file is still whole.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import zlib
from collections.abc import Generator
from typing import BinaryIO, Final

from cttop.errors import CttopError
from cttop.sources.record import HEADER, KINDS, MAGIC, MAX_RECORD, REC, VERSION

READ_CHUNK: Final = 1 << 16  # compressed bytes read at a time
OUT_CHUNK: Final = 1 << 18  # decompressed bytes handed out at a time: 3 MB of gzip can hold 3 GB of zeros
# Inflated bytes per file byte. What cttop writes (gzip level 1, a sync flush a second) stays under ~75:1 even
# idle (one stats record repeated); deflate goes to 1032:1, which is how 3 MB of a file became 3 GB. Past this
# ratio (and a slack for small files) a file is not read on: its reading costs CPU in proportion to its size.
MAX_RATIO: Final = 250
RATIO_SLACK: Final = 16 << 20


class ReplayError(CttopError):
    """A recording that cannot be replayed; the message names the file and the byte."""


class Corrupt(ReplayError):
    """Damage in the segment starting at file offset ``member``."""

    def __init__(self, path: str, member: int, why: str) -> None:
        self.path, self.member, self.why = path, member, why
        super().__init__(f"replay: {path} is corrupt at byte {member}: {why}")

    def located(self, size: int) -> str:
        """The message with the damaged byte range, found by decompressing the segment again."""
        return (f"replay: {self.path} is corrupt in bytes {self.member}-{_segment_end(self.path, self.member, size)}"
                f": {self.why}")


class Truncated(ReplayError):
    def __init__(self, path: str, size: int) -> None:
        super().__init__(f"replay: {path} is truncated at byte {size}")


class Inflated(ReplayError):
    """Past MAX_RATIO: like a cut, what came before is whole (it inflated without error) and is replayed."""

    def __init__(self, path: str, pos: int) -> None:
        super().__init__(f"replay: {path} inflates more than {MAX_RATIO}:1 by byte {pos}, far more than any "
                         "recording cttop writes (a decompression bomb?)")


def _over_ratio(inflated: int, consumed: int) -> bool:
    return inflated > MAX_RATIO * consumed + RATIO_SLACK


def _segment_end(path: str, member: int, size: int) -> int:
    """Where the segment at ``member`` ends, or where its damage was noticed: the end of a damaged range."""
    d = zlib.decompressobj(31)
    pos = member
    inflated = 0
    with open_recording(path) as f:
        f.seek(member)
        # Small steps, so the offset at which zlib gives up is known to within a step.
        while chunk := f.read(256):
            data = chunk
            try:
                while True:  # the output is thrown away, a bounded piece at a time
                    out = d.decompress(data, OUT_CHUNK)
                    inflated += len(out)
                    data = d.unconsumed_tail
                    if d.eof or not (data or len(out) == OUT_CHUNK):
                        break
            except zlib.error:
                return min(pos + len(chunk), size)
            if d.eof:
                return pos + len(chunk) - len(d.unused_data)
            pos += len(chunk)
            if _over_ratio(inflated, pos - member):
                return pos  # a bomb: its range runs at least to here
    return size


_KINDS_OF_FILE: Final = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
                         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def open_recording(path: str, ident: tuple[int, int] | None = None) -> BinaryIO:
    """``path`` opened for reading, refused unless it is a regular file (and, given ``ident``, the same one).

    O_NONBLOCK so that a FIFO is refused instead of hanging the open; O_NOFOLLOW so that what is read is the
    file named, not wherever a link in a bug report's archive points.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ReplayError(f"replay: {path}: no such file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ReplayError(f"replay: {path} is a symbolic link; give the recording itself") from None
        raise ReplayError(f"replay: {path}: {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        what = _KINDS_OF_FILE.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise ReplayError(f"replay: {path}: is {what}, not a recording")
    if ident is not None and (st.st_dev, st.st_ino) != ident:
        os.close(fd)
        raise ReplayError(f"replay: {path} was replaced since it was opened")
    return os.fdopen(fd, "rb")


def read_header(path: str) -> tuple[int, tuple[int, int]]:
    """Check magic and version; the file's size and identity (device, inode)."""
    with open_recording(path) as f:
        try:
            head = f.read(HEADER.size)
        except OSError as e:
            raise ReplayError(f"replay: {path}: {e.strerror}") from None
        st = os.fstat(f.fileno())
    size, ident = st.st_size, (st.st_dev, st.st_ino)
    if len(head) < HEADER.size:
        if head and MAGIC.startswith(head[:len(MAGIC)]):
            raise Truncated(path, size)
        raise ReplayError(f"replay: {path} is not a cttop recording (no {MAGIC.decode()} header)")
    magic, version, _flags = HEADER.unpack(head)
    if magic != MAGIC:
        raise ReplayError(f"replay: {path} is not a cttop recording (no {MAGIC.decode()} header)")
    if version != VERSION:
        raise ReplayError(f"replay: {path} is format version {version}; this cttop reads version {VERSION}")
    return size, ident


def stream(path: str, offset: int, size: int, ident: tuple[int, int] | None = None,
           guard: bool = True) -> Generator[tuple[int, int, float, bytes], None, None]:
    """``(segment offset, kind, time, payload)`` of every record from the segment at ``offset`` on.

    Holds at most one record (MAX_RECORD) and one piece of output (OUT_CHUNK) at a time, and with ``guard``
    raises :class:`Inflated` past MAX_RATIO (a replay reads no further than the scan that checked it).
    """
    f = open_recording(path, ident)  # closed in finally: the generator may be abandoned
    try:
        f.seek(offset)
        pos = member = offset  # file offsets: of the input consumed, of the segment it belongs to
        d = zlib.decompressobj(31)
        pending = bytearray()
        inflated = 0
        while True:
            try:
                data = f.read(READ_CHUNK)
            except OSError as e:
                raise ReplayError(f"replay: {path}: {e.strerror}") from None
            if not data:
                if pos > member or pending:
                    raise Truncated(path, size)
                return
            while True:
                try:
                    out = d.decompress(data, OUT_CHUNK)
                except zlib.error as e:
                    raise Corrupt(path, member, f"compressed data: {e}") from None
                inflated += len(out)
                if guard and _over_ratio(inflated, pos + len(data) - offset):
                    raise Inflated(path, pos + len(data))
                pending += out
                off = 0
                while len(pending) - off >= REC.size:
                    kind, t, ln = REC.unpack_from(pending, off)
                    if kind not in KINDS or ln > MAX_RECORD or not math.isfinite(t):
                        raise Corrupt(path, member, f"bad record header (kind {kind}, {ln} bytes)")
                    if len(pending) - off - REC.size < ln:
                        break
                    start = off + REC.size
                    with memoryview(pending) as view:  # one copy of the record, not two
                        payload = bytes(view[start:start + ln])
                    yield member, kind, t, payload
                    off = start + ln
                del pending[:off]
                if d.eof:
                    if pending:
                        raise Corrupt(path, member, "a record runs past the end of its segment")
                    pos += len(data) - len(d.unused_data)
                    data = d.unused_data
                    member = pos
                    d = zlib.decompressobj(31)
                    if not data:
                        break
                elif d.unconsumed_tail or len(out) == OUT_CHUNK:
                    # The output was capped: the rest of this input (or output zlib still holds) comes next.
                    pos += len(data) - len(d.unconsumed_tail)
                    data = d.unconsumed_tail
                else:
                    pos += len(data)
                    break
    finally:
        f.close()

