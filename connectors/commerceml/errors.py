"""Errors of the CommerceML exchange. They carry no HTTP status: the exchange routes map
them to ``failure`` answers with a fitting status at the edge (routes_commerceml.py)."""

from __future__ import annotations

from connectors.errors import ConnectorError
from mmstream.errors import InvalidRecord


class CommerceMLError(ConnectorError):
    """Root of the errors the exchange answers with ``failure``; 1С shows the message."""

    code = "commerceml_error"


class BadCredentials(CommerceMLError):
    """``checkauth`` without valid Basic credentials. Check the user and password set in
    1С's exchange settings against MM_COMMERCEML__USERNAME / __PASSWORD."""

    code = "bad_credentials"


class NoSession(CommerceMLError):
    """The request carries no session cookie, or one that is unknown or expired. 1С starts
    over with ``checkauth`` on its next exchange."""

    code = "no_session"


class BadRequest(CommerceMLError):
    """An unknown ``type``/``mode``, a missing or unsafe ``filename``, an empty upload."""

    code = "bad_request"


class TooLarge(CommerceMLError):
    """An upload over ``file_limit`` in one request, or a file or session over its cap."""

    code = "too_large"


class ArchiveTooLarge(TooLarge):
    """A zip archive over a cap before anything is unpacked: too many entries, too many bytes
    unpacked in all, or a member packed far tighter than any XML (a zip bomb)."""

    code = "archive_too_large"


class StorageFull(CommerceMLError):
    """The exchange's storage is full (all sessions' files over max_total_bytes) or too many
    sessions are open (max_sessions): 1С retries the exchange later."""

    code = "storage_full"


class ExchangeDisabled(CommerceMLError):
    """No password is configured (MM_COMMERCEML__PASSWORD): the endpoint is off."""

    code = "commerceml_disabled"


class FileNotUploaded(CommerceMLError):
    """``import`` names a file that this session never uploaded (nor any archive it sent)."""

    code = "file_not_uploaded"


class InvalidDocument(CommerceMLError, InvalidRecord):
    """The file is not a CommerceML document: not well-formed XML, a broken zip archive,
    or a root other than ``КоммерческаяИнформация``. Nothing of it is published."""

    code = "invalid_document"


class BrokenArchive(InvalidDocument):
    """The upload starts like a zip archive but cannot be read as one (maybe truncated)."""

    code = "broken_archive"


class DuplicateMember(InvalidDocument):
    """A zip archive holds two entries of the same name: which one to import is ambiguous
    (and repeating one big member is how a small zip unpacks to a lot)."""

    code = "duplicate_member"


class IncompleteDocument(InvalidDocument):
    """The XML ends before its root element closes: more chunks are still to come."""

    code = "incomplete_document"


class InvalidEntry(CommerceMLError, InvalidRecord):
    """One ``Товар``, ``Предложение`` or ``Документ`` cannot become a record (no ``Ид``, a
    price that is not a number, ...). One such entry makes the whole file fail."""

    code = "invalid_entry"


class DocumentRejected(CommerceMLError, InvalidRecord):
    """A well-formed document with invalid entries; ``problems`` lists the first of them."""

    code = "document_rejected"

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems
