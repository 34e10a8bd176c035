"""What `mmctl run` adds to the user's settings so its children fit the emulators it starts.

The client URLs default to the emulators' default ports (8081 Bitrix24, 8082 1С). Moving an
emulator (MM_EMBEDDED__BITRIX24_PORT / MM_EMBEDDED__ONEC_PORT, as the port-conflict message
advises) must move the clients too, or the enrichment and egress workers retry against the
old port until their circuits open. A URL the user set to something else is theirs: only
values still equal to the defaults (or unset) follow the emulators.

The demo also needs the portal's side configured: an application token so the bridge
accepts the events the demo posts as the portal, and the couriers' deal funnels.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from mmstream.settings import (
    Bitrix24OAuthSettings,
    Bitrix24Settings,
    ODataSettings,
    OneCSettings,
    Settings,
)

# The embedded portal's member id and application token (the embedded profile's children
# may run on development values; check_secrets refuses them anywhere else).
DEMO_MEMBER_ID = "dev-only-embedded-portal"
DEMO_APP_TOKEN = "dev-only-embedded-application-token"  # noqa: S105 — a development value
# The couriers' deal funnels (CATEGORY_ID) when the user configured none.
DEMO_INSTANT_ORDER_CATEGORY = 3
DEMO_RETURN_CATEGORY = 5


def _default(model: type, name: str):
    value = model.model_fields[name].default
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def moved(url: str, default: str, port: int) -> str:
    """``url`` on ``port`` when it is still ``default`` (or empty); otherwise unchanged."""
    if url and url != default:
        return url
    parts = urlsplit(default)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


def follow_emulators(settings: Settings) -> Settings:
    """The settings with every client URL still at its default pointed at the emulators' ports."""
    bx_port, onec_port = settings.embedded.bitrix24_port, settings.embedded.onec_port
    bx = settings.bitrix24
    bx_update: dict = {
        "webhook_url": SecretStr(
            moved(
                bx.webhook_url.get_secret_value(),
                _default(Bitrix24Settings, "webhook_url"),
                bx_port,
            )
        )
    }
    if bx.auth_mode == "oauth":
        # The emulator is the portal and its own token endpoint (/oauth/token/).
        emulator = f"http://127.0.0.1:{bx_port}"
        oauth_update = {"portal": moved(bx.oauth.portal, "http://127.0.0.1:8081", bx_port)}
        # A real portal keeps the vendor's token endpoint; the emulated one issues its own.
        if oauth_update["portal"] == emulator and bx.oauth.token_url == _default(
            Bitrix24OAuthSettings, "token_url"
        ):
            oauth_update["token_url"] = f"http://127.0.0.1:{bx_port}/oauth/token/"
        bx_update["oauth"] = bx.oauth.model_copy(update=oauth_update)
    onec = settings.onec
    onec_update = {"base_url": moved(onec.base_url, _default(OneCSettings, "base_url"), onec_port)}
    # Empty odata_url is derived from base_url by the client (and so follows it already);
    # the explicit default publication follows the emulator like base_url.
    odata_default = _default(ODataSettings, "base_url")
    if onec.odata_url == odata_default:
        onec_update["odata_url"] = moved(onec.odata_url, odata_default, onec_port)
    odata = settings.odata
    return settings.model_copy(
        update={
            "bitrix24": bx.model_copy(update=bx_update),
            "onec": onec.model_copy(update=onec_update),
            "odata": odata.model_copy(
                update={"base_url": moved(odata.base_url, odata_default, onec_port)}
            ),
        }
    )


def with_demo_portal(settings: Settings) -> Settings:
    """The settings with an application token for events and the couriers' funnels, where
    the user set none (the demo plays the portal and the couriers)."""
    bx = settings.bitrix24
    update: dict = {}
    if not bx.application_tokens:
        update["application_tokens"] = {DEMO_MEMBER_ID: SecretStr(DEMO_APP_TOKEN)}
    couriers = bx.couriers
    funnels: dict = {}
    if (
        couriers.instant_order_category_id is None
        and couriers.return_category_id != DEMO_INSTANT_ORDER_CATEGORY
    ):
        funnels["instant_order_category_id"] = DEMO_INSTANT_ORDER_CATEGORY
    if (
        couriers.return_category_id is None
        and couriers.instant_order_category_id != DEMO_RETURN_CATEGORY
    ):
        funnels["return_category_id"] = DEMO_RETURN_CATEGORY
    if funnels:
        update["couriers"] = couriers.model_copy(update=funnels)
    return (
        settings.model_copy(update={"bitrix24": bx.model_copy(update=update)})
        if update
        else settings
    )
