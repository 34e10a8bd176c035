"""The secrets policy (design.md invariant 11): outside the embedded stack, a long-running
command refuses to start on a development default, a template's placeholder, a short or
plainly non-random secret, or a 1С address left at the emulator's default or under a reserved
(.invalid / .example) host. Messages name the setting, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

from mmstream.errors import ConfigurationError
from mmstream.settings import WEBHOOK_CODE, ODataSettings, OneCSettings, Settings

# The long-running production commands; each checks the secrets it relies on at start.
SecretRole = Literal["bridge", "sink", "egress", "enrich", "poll-odata", "registry"]

# Minimum lengths in bytes. Keys this deployment mints itself (the bearer-token key, API keys,
# the CommerceML password) and the portal's application tokens and OAuth secrets (32+
# characters as Bitrix24 issues them): 32, i.e. 256 bits for HS256. Credentials whose format
# another system sets: a Bitrix24 webhook code is 16 characters; the passwords of the 1С,
# OData and Kafka users are chosen by those systems' admins: 16. The database password is
# checked for development and placeholder values only (it may as well be absent: peer or
# certificate authentication).
MINTED_SECRET_BYTES = 32
ISSUED_SECRET_BYTES = 16

# Parts that mark a value as a development default or a template's placeholder (the built-in
# defaults all contain "dev-only" or "devwebhookcode"; the k8s template's say REPLACE_ME).
_PLACEHOLDER_PARTS = (
    "dev-only",
    "devwebhookcode",
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replace_me",
    "replaceme",
    "placeholder",
    "example",
    "secret",
    "password",
    "passwd",
    "xxx",
    "todo",
    "fixme",
    "dummy",
    "insecure",
    "default",
)
_PLACEHOLDER_VALUES = frozenset(
    {
        "postgres",
        "admin",
        "root",
        "mmstream",
        "test",
        "dev",
        "guest",
        "qwerty",
        "letmein",
        "123456",
        "12345678",
        "123456789",
    }
)
_TEMPLATE_MARK = re.compile(r"<[^>]*>|\$\{[^}]*\}|\{\{.*\}\}")
# What marks a whole URL (the database's) as a template: its other words may be a real host.
_URL_PLACEHOLDER = re.compile(
    r"replace[-_]?me|change[-_]?me|placeholder|dev-only|<[^>]*>|\$\{", re.IGNORECASE
)


def secret_weakness(value: str, min_bytes: int = MINTED_SECRET_BYTES) -> str | None:
    """Why ``value`` is unfit as a production secret (a phrase without the value), or None."""
    lowered = value.strip().lower()
    if not lowered:
        return "is not set"
    if (
        lowered in _PLACEHOLDER_VALUES
        or any(p in lowered for p in _PLACEHOLDER_PARTS)
        or _TEMPLATE_MARK.search(value)
    ):
        return "is a development or placeholder value"
    if len(value.encode()) < min_bytes:
        return f"is shorter than {min_bytes} bytes"
    if min_bytes >= ISSUED_SECRET_BYTES and len(set(value)) < 8:
        return "has too few distinct characters to be random"
    return None


def _plain(secret: SecretStr | str | None) -> str:
    if secret is None:
        return ""
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


def _url_password(url: str) -> str:
    try:
        parts = urlsplit(url)
        password = parts.password or ""
    except ValueError:
        return ""
    for key, _, value in (item.partition("=") for item in parts.query.split("&")):
        if key.lower() == "password":
            password = password or value
    return password


def _webhook_code(url: str) -> str:
    try:
        match = WEBHOOK_CODE.search(urlsplit(url).path)
    except ValueError:
        match = None
    return match.group(2) if match else url  # no /rest/USER/CODE/: judge the whole value


def _role_secrets(s: Settings, role: SecretRole) -> Iterator[tuple[str, str, int, bool]]:
    """(setting name, value, minimum bytes, required) of every secret ``role`` relies on."""
    if s.kafka.sasl_mechanism:
        yield "kafka.sasl_password", _plain(s.kafka.sasl_password), ISSUED_SECRET_BYTES, True
    # The schema registry's credentials, when it asks for any (one registry user per deployment).
    if s.registry.basic_auth_username:
        yield (
            "registry.basic_auth_password",
            _plain(s.registry.basic_auth_password),
            ISSUED_SECRET_BYTES,
            True,
        )
    if s.registry.bearer_token:
        yield "registry.bearer_token", _plain(s.registry.bearer_token), ISSUED_SECRET_BYTES, True
    if s.database_url is not None:
        yield "the password in database_url", _url_password(_plain(s.database_url)), 0, False
    if role == "bridge":
        yield "auth.jwt_secret", _plain(s.auth.jwt_secret), MINTED_SECRET_BYTES, True
        for name, key in s.auth.api_keys.items():
            yield f"auth.api_keys.{name}.key", _plain(key.key), MINTED_SECRET_BYTES, True
        # Unset: the CommerceML endpoint is off; set: it must be a real password.
        yield "commerceml.password", _plain(s.commerceml.password), MINTED_SECRET_BYTES, False
        for member, token in s.bitrix24.application_tokens.items():
            yield (
                f"bitrix24.application_tokens.{member}",
                _plain(token),
                MINTED_SECRET_BYTES,
                True,
            )
    if role in ("egress", "enrich"):
        bx = s.bitrix24
        if bx.auth_mode == "webhook":
            yield (
                "bitrix24.webhook_url (its code)",
                _webhook_code(_plain(bx.webhook_url)),
                ISSUED_SECRET_BYTES,
                True,
            )
        else:
            oauth = bx.oauth
            yield (
                "bitrix24.oauth.client_secret",
                _plain(oauth.client_secret),
                MINTED_SECRET_BYTES,
                True,
            )
            # Seeds of the token table, needed once: unset later on is fine.
            yield (
                "bitrix24.oauth.access_token",
                _plain(oauth.access_token),
                MINTED_SECRET_BYTES,
                False,
            )
            yield (
                "bitrix24.oauth.refresh_token",
                _plain(oauth.refresh_token),
                MINTED_SECRET_BYTES,
                False,
            )
    if role == "egress":
        # Empty: the 1С service is called without Basic auth (a publication without one).
        yield "onec.password", _plain(s.onec.password), ISSUED_SECRET_BYTES, False
    if role == "poll-odata":
        yield "odata.password", _plain(s.odata.password), ISSUED_SECRET_BYTES, False


def secret_problems(settings: Settings, role: SecretRole) -> list[str]:
    """'<setting> <why>' for each secret of ``role`` unfit for production; never a value."""
    problems = []
    db_url = _plain(settings.database_url)
    if db_url and _URL_PLACEHOLDER.search(db_url):
        problems.append("database_url is a development or placeholder value")
    for name, value, min_bytes, required in _role_secrets(settings, role):
        if not value and not required:
            continue
        reason = secret_weakness(value, min_bytes)
        if reason:
            problems.append(f"{name} {reason}")
    for name, url, default in _role_addresses(settings, role):
        if url == default or _URL_PLACEHOLDER.search(url) or _host_is_reserved(url):
            problems.append(f"{name} is not set (the development default or a placeholder)")
    return problems


def _role_addresses(s: Settings, role: SecretRole) -> Iterator[tuple[str, str, str]]:
    """(setting name, value, development default) of every 1С address ``role`` calls: left at
    the default, egress would call the emulator's port on its own host, every call failing."""
    if role == "egress":
        yield "onec.base_url", s.onec.base_url, OneCSettings.model_fields["base_url"].default
    if role == "poll-odata" and s.odata.enabled:  # deployed idle until enabled
        yield "odata.base_url", s.odata.base_url, ODataSettings.model_fields["base_url"].default


def _host_is_reserved(url: str) -> bool:
    """A host under RFC 2606's .invalid / .example, the deploy templates' placeholders."""
    host = (urlsplit(url).hostname or "").lower()
    return host.endswith((".invalid", ".example")) or host in ("invalid", "example")


def check_secrets(settings: Settings, role: SecretRole) -> None:
    """Refuse a development, placeholder or short secret that ``role`` relies on
    (design.md invariant 11), naming the setting and never its value. Called by every
    long-running production command before it connects anywhere; the embedded stack's
    children (profile "embedded") may run on the development values."""
    if settings.profile == "embedded":
        return
    problems = secret_problems(settings, role)
    if problems:
        raise ConfigurationError(
            f"refusing to start {role} with unfit secrets: {'; '.join(problems)}. Set real "
            "values (MM_* variables or the deployment's Secret); only `mmctl run`, the "
            "embedded stack, runs with the development defaults"
        )
