"""Uploaded files: safe names, what is worth keeping, spooling, zip archives.

With ``zip=yes`` 1С uploads one archive (whatever its name) holding ``import.xml``,
``offers.xml`` and maybe pictures, then asks to import the XML files by their names;
the member is found and extracted at import time, when the archive is complete.

An archive is checked before anything is unpacked (:func:`open_archive`): entry count,
total unpacked size and packing ratio are capped (:class:`ZipLimits`, from the settings),
and duplicate names refused; members are then read as streams, never held whole.
"""

from __future__ import annotations

import posixpath
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from connectors.commerceml.errors import (
    ArchiveTooLarge,
    BadRequest,
    BrokenArchive,
    DuplicateMember,
    InvalidDocument,
)

# Spooled files stay in memory up to this size, then move to the work directory.
SPOOL_MEMORY_BYTES = 1 << 20
MAX_NAME_CHARS = 512
_KEPT_SUFFIXES = (".xml", ".zip")
_UTF8_NAMES = 0x800  # zip flag bit: member names are UTF-8
_BLOCK = 1 << 20
# Members smaller than this are not judged by their ratio (tiny files pack oddly).
_RATIO_FLOOR_BYTES = 1 << 20
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, zlib.error)


@dataclass(frozen=True)
class ZipLimits:
    """What an uploaded archive may hold (CommerceMLSettings.max_zip_*)."""

    max_members: int = 50_000
    max_unpacked_bytes: int = 2 << 30
    max_ratio: int = 200

    @classmethod
    def of(cls, cfg) -> ZipLimits:
        return cls(cfg.max_zip_members, cfg.max_unpacked_bytes, cfg.max_zip_ratio)


def safe_name(raw: str | None) -> str:
    """The ``filename`` parameter as a relative POSIX path, or BadRequest.

    1С sends plain names (``import.xml``) and, for pictures, relative paths
    (``import_files/ab/abc.jpg``); nothing may climb out with ``..``.
    """
    name = (raw or "").replace("\\", "/").strip().lstrip("/")
    if not name:
        raise BadRequest("the filename parameter is missing")
    if len(name) > MAX_NAME_CHARS or any(ord(c) < 32 for c in name):
        raise BadRequest("the filename is too long or contains control characters")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise BadRequest(f"the filename {raw!r} is not a plain relative path")
    return name


def worth_keeping(filename: str, head: bytes, already_stored: bool) -> bool:
    """Whether an upload is stored: XML documents and archives (by name or content) and
    further chunks of a stored file. Pictures sent one by one are acknowledged and dropped:
    nothing downstream uses them, and they would fill the database."""
    if already_stored or filename.lower().endswith(_KEPT_SUFFIXES):
        return True
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"PK\x03\x04") or start.startswith(b"<")


_ROOT_CLOSE = re.compile(
    rb"</(?:[^<>\s:]+:)?(?:%s|%s)\s*>"
    % ("КоммерческаяИнформация".encode(), "КоммерческаяИнформация".encode("cp1251"))
)
EDGE_BYTES = 4096


def looks_complete(head: bytes, tail: bytes) -> bool:
    """Whether an upload whose first and last bytes are these may be complete: a zip whose
    end record is there, an XML document whose root is closed. Cheap, so that a file sent
    in chunks (the sale direction, which has no import call) is parsed once, not at every
    chunk. It errs on the side of "maybe": anything else (not XML, UTF-16, …) says True and
    is parsed, so nothing is ever left waiting for a chunk that is not coming."""
    if head.startswith(b"PK\x03\x04"):
        return b"PK\x05\x06" in tail[-(22 + 0xFFFF) :]
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return True
    end = tail.rstrip(b" \t\r\n\x00")
    return end.endswith(b">") and _ROOT_CLOSE.search(end[-EDGE_BYTES:]) is not None


class ByteStream(Protocol):
    """What the parser needs of a document: a file, a spool or an archive member."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


def spool(work_dir: Path) -> tempfile.SpooledTemporaryFile[bytes]:
    """A temporary binary file: in memory while small, under ``work_dir`` when large."""
    work_dir.mkdir(parents=True, exist_ok=True)
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, dir=str(work_dir))


def is_zip(stream: IO[bytes]) -> bool:
    """Whether the stream holds a zip archive (it is rewound either way)."""
    stream.seek(0)
    head = stream.read(4)
    stream.seek(0)
    return head == b"PK\x03\x04"


def member_name(info: zipfile.ZipInfo) -> str:
    """The member's name; archives made on Windows without the UTF-8 flag use cp866."""
    if info.flag_bits & _UTF8_NAMES:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("cp866")
    except UnicodeError:
        return info.filename


def declared_entries(archive: IO[bytes]) -> int | None:
    """The entry count the archive's end record declares (zip64 too), read before zipfile
    parses the central directory into memory; None when there is no end record."""
    archive.seek(0, 2)
    size = archive.tell()
    tail_len = min(size, 22 + 0xFFFF + 20)  # end record, its comment, the zip64 locator
    archive.seek(size - tail_len)
    tail = archive.read(tail_len)
    archive.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    entries = struct.unpack_from("<H", tail, at + 10)[0]
    if entries == 0xFFFF and at >= 20 and tail[at - 20 : at - 16] == b"PK\x06\x07":
        archive.seek(struct.unpack_from("<Q", tail, at - 20 + 8)[0])
        record = archive.read(56)
        archive.seek(0)
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            entries = struct.unpack_from("<Q", record, 32)[0]
    return entries


def check_infos(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    """ArchiveTooLarge / DuplicateMember for an archive that must not be unpacked."""
    if len(infos) > limits.max_members:
        raise ArchiveTooLarge(
            f"the archive holds {len(infos)} entries, more than {limits.max_members}"
        )
    total = sum(i.file_size for i in infos)
    if total > limits.max_unpacked_bytes:
        raise ArchiveTooLarge(
            f"the archive unpacks to {total} bytes, more than {limits.max_unpacked_bytes}"
        )
    seen: set[str] = set()
    for info in infos:
        name = member_name(info)
        if name in seen:
            raise DuplicateMember(f"the archive holds more than one entry named {name}")
        seen.add(name)
    for info in infos:
        name = member_name(info)
        if info.file_size > _RATIO_FLOOR_BYTES and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise ArchiveTooLarge(
                f"{name} unpacks {info.file_size // max(info.compress_size, 1)} times its "
                f"packed size, more than {limits.max_ratio}: a zip bomb, refused"
            )


@contextmanager
def open_archive(archive: IO[bytes], limits: ZipLimits) -> Iterator[zipfile.ZipFile]:
    """The uploaded archive, checked against ``limits`` before anything is unpacked.
    BrokenArchive if unreadable, ArchiveTooLarge / DuplicateMember if refused."""
    entries = declared_entries(archive)
    if entries is not None and entries > limits.max_members:
        raise ArchiveTooLarge(
            f"the archive holds {entries} entries, more than {limits.max_members}"
        )
    try:
        zf = zipfile.ZipFile(archive)
    except _ZIP_ERRORS as exc:
        raise BrokenArchive(f"the uploaded archive is not a readable zip file: {exc}") from None
    with zf:
        check_infos(zf.infolist(), limits)
        yield zf


class _MemberStream:
    """A member being read: zip errors met while reading become InvalidDocument."""

    def __init__(self, raw: IO[bytes], name: str) -> None:
        self.raw, self.name = raw, name

    def read(self, size: int = -1) -> bytes:
        try:
            return self.raw.read(size)
        except _ZIP_ERRORS as exc:
            raise InvalidDocument(f"{self.name} cannot be unpacked: {exc}") from None

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)


@contextmanager
def member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[ByteStream]:
    """One member as a stream, unpacked as it is read."""
    try:
        raw = zf.open(info)
    except _ZIP_ERRORS as exc:
        raise InvalidDocument(f"{member_name(info)} cannot be unpacked: {exc}") from None
    with raw:
        yield _MemberStream(raw, member_name(info))


def xml_infos(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The archive's XML members, in archive order."""
    return [i for i in zf.infolist() if not i.is_dir() and member_name(i).lower().endswith(".xml")]


def extract(
    archive: IO[bytes], filename: str, dest: IO[bytes], limits: ZipLimits = ZipLimits()
) -> bool:
    """Copy the member named ``filename`` (exact path first, then the same base name) into
    ``dest``. False when the archive has no such member; BrokenArchive / InvalidDocument for
    an unreadable archive, ArchiveTooLarge / DuplicateMember for a refused one."""
    with open_archive(archive, limits) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        match = next((i for i in infos if member_name(i) == filename), None) or next(
            (
                i
                for i in infos
                if posixpath.basename(member_name(i)) == posixpath.basename(filename)
            ),
            None,
        )
        if match is None:
            archive.seek(0)
            return False
        with member(zf, match) as src:
            # zipfile stops at the declared size, which check_infos capped.
            while block := src.read(_BLOCK):
                dest.write(block)
    archive.seek(0)
    dest.seek(0)
    return True


def xml_members(archive: IO[bytes], limits: ZipLimits = ZipLimits()) -> list[str]:
    """Names of the archive's XML members, in archive order (checked as open_archive does)."""
    with open_archive(archive, limits) as zf:
        names = [member_name(i) for i in xml_infos(zf)]
    archive.seek(0)
    return names
