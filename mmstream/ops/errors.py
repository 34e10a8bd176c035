"""Errors of the operator commands (part of the mmstream.errors hierarchy)."""

from __future__ import annotations

from mmstream.errors import MMStreamError


class GroupNotFound(MMStreamError):
    """The consumer group has no members and no committed offsets. Check its name with
    `mmctl groups list`."""

    code = "group_not_found"


class OperationRefused(MMStreamError):
    """The operation would be unsafe now (e.g. the group has live members). The message says
    what to do first; nothing was changed."""

    code = "operation_refused"


class InvalidResetSpec(MMStreamError):
    """The requested reset target cannot be computed (bad duration, no committed offset to
    shift from, unknown topic). Nothing was changed."""

    code = "invalid_reset"
