"""The registry's API error and the Confluent error codes it answers with."""

from __future__ import annotations

from connectors.errors import ConnectorError


class RegistryError(ConnectorError):
    """An error answered in Confluent's shape: ``{"error_code": ..., "message": ...}``.

    Confluent's error codes embed the HTTP status (40401 -> 404, 42201 -> 422, 409 -> 409),
    so the error carries only the code and the edge derives the status.
    """

    code = "schema_registry_error"

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status Confluent answers with this error code."""
        return self.error_code // 100 if self.error_code >= 1000 else self.error_code


def subject_not_found(subject: str) -> RegistryError:
    """40401: no version of ``subject`` is visible."""
    return RegistryError(40401, f"Subject '{subject}' not found.")


def version_not_found(version: int | None) -> RegistryError:
    """40402: the subject has no such version (None: latest)."""
    return RegistryError(40402, f"Version {'latest' if version is None else version} not found.")


def schema_id_not_found(schema_id: int) -> RegistryError:
    """40403: no schema has this global id."""
    return RegistryError(40403, f"Schema {schema_id} not found")


def no_subject_level(subject: str) -> RegistryError:
    """40408: the subject has no compatibility level of its own."""
    return RegistryError(
        40408, f"Subject '{subject}' does not have subject-level compatibility configured"
    )


def invalid_schema(detail: str) -> RegistryError:
    """42201: the submitted schema is not one this registry accepts."""
    return RegistryError(42201, f"Invalid schema: {detail}")
