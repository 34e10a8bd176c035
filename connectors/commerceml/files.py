"""Uploaded files: safe names, what is worth keeping, spooling, zip archives.

With ``zip=yes`` 1С uploads one archive (whatever its name) holding ``import.xml``,
``offers.xml`` and maybe pictures, then asks to import the XML files by their names;
the member is found and extracted at import time, when the archive is complete.
"""

from __future__ import annotations

import posixpath
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

from connectors.commerceml.errors import BadRequest, InvalidDocument, TooLarge

# Spooled files stay in memory up to this size, then move to the work directory.
SPOOL_MEMORY_BYTES = 16 << 20
# Cap on an extracted member: a small archive must not unpack into an endless file.
MAX_MEMBER_BYTES = 2 << 30
MAX_NAME_CHARS = 512
_KEPT_SUFFIXES = (".xml", ".zip")
_UTF8_NAMES = 0x800  # zip flag bit: member names are UTF-8
_BLOCK = 1 << 20


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


def spool(work_dir: Path) -> tempfile.SpooledTemporaryFile:
    """A temporary binary file: in memory while small, under ``work_dir`` when large."""
    work_dir.mkdir(parents=True, exist_ok=True)
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, dir=work_dir)


def is_zip(stream: BinaryIO) -> bool:
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


def extract(archive: BinaryIO, filename: str, dest: BinaryIO) -> bool:
    """Copy the member named ``filename`` (exact path first, then the same base name) into
    ``dest``. False when the archive has no such member; InvalidDocument for a broken
    archive, TooLarge for a member over the cap."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            match = next((i for i in infos if member_name(i) == filename), None) or next(
                (i for i in infos if posixpath.basename(member_name(i)) == posixpath.basename(filename)),
                None)
            if match is None:
                return False
            if match.file_size > MAX_MEMBER_BYTES:
                raise TooLarge(f"{filename} unpacks to more than {MAX_MEMBER_BYTES} bytes")
            with zf.open(match) as src:
                _copy_capped(src, dest, filename)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
        raise InvalidDocument(f"the uploaded archive is not a readable zip file: {exc}") from None
    dest.seek(0)
    return True


def _copy_capped(src: BinaryIO, dest: BinaryIO, filename: str) -> None:
    copied = 0
    while block := src.read(_BLOCK):
        copied += len(block)
        if copied > MAX_MEMBER_BYTES:
            # The header lied about the size.
            raise TooLarge(f"{filename} unpacks to more than {MAX_MEMBER_BYTES} bytes")
        dest.write(block)


def xml_members(archive: BinaryIO) -> list[str]:
    """Names of the archive's XML members, in archive order; InvalidDocument if unreadable."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [member_name(i) for i in zf.infolist()
                     if not i.is_dir() and member_name(i).lower().endswith(".xml")]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise InvalidDocument(f"the uploaded archive is not a readable zip file: {exc}") from None
    archive.seek(0)
    return names
