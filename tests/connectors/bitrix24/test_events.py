"""Parsing Bitrix24 event forms and classifying events: pure functions on bodies shaped
exactly as a portal posts them (http_build_query, percent-encoded brackets)."""

from __future__ import annotations

import json

import pytest

from connectors.bitrix24.events import (
    SUPPORTED,
    EventRef,
    MalformedEvent,
    MissingPortalAuth,
    NotAnEvent,
    UnsupportedEvent,
    app_install,
    authorization_code,
    classify,
    cloud_event,
    epoch_iso,
    event_name,
    portal_auth,
)
from connectors.bitrix24.form import FormTooLarge, MalformedForm, parse_php_form
from mmstream.errors import InvalidRecord
from tests.support.bitrix24 import (
    APP_TOKEN,
    DOMAIN,
    MEMBER_ID,
    event_body,
    install_body,
    php_form,
    placement_body,
)

# As captured from a portal (OAuth application handler), byte for byte.
DEAL_UPDATE = (
    b"event=ONCRMDEALUPDATE&event_handler_id=201&data%5BFIELDS%5D%5BID%5D=759&ts=1736405807"
    b"&auth%5Baccess_token%5D=s6p6eclrvim6da22ft9ch94ekreb52lv&auth%5Bexpires_in%5D=3600"
    b"&auth%5Bscope%5D=crm&auth%5Bdomain%5D=some-domain.bitrix24.com"
    b"&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F&auth%5Bstatus%5D=F"
    b"&auth%5Bclient_endpoint%5D=https%3A%2F%2Fsome-domain.bitrix24.com%2Frest%2F"
    b"&auth%5Bmember_id%5D=a223c6b3710f85df22e9377d6c4f7553"
    b"&auth%5Brefresh_token%5D=4s386p3q0tr8dy89xvmt96234v3dljg8"
    b"&auth%5Bapplication_token%5D=51856fefc120afa4b628cc82d3935cce"
)


def test_parse_real_deal_update_body():
    form = parse_php_form(DEAL_UPDATE)
    assert form["event"] == "ONCRMDEALUPDATE"
    assert form["data"] == {"FIELDS": {"ID": "759"}}
    assert form["auth"]["client_endpoint"] == "https://some-domain.bitrix24.com/rest/"
    auth = portal_auth(form)
    assert (auth.member_id, auth.application_token, auth.domain) == (
        "a223c6b3710f85df22e9377d6c4f7553",
        "51856fefc120afa4b628cc82d3935cce",
        "some-domain.bitrix24.com",
    )
    ref = classify(event_name(form), form)
    assert (ref.entity, ref.id, ref.kind, ref.key) == ("deal", "759", "UPDATE", "deal:759")


def test_parse_unencoded_brackets_and_php_lists():
    form = parse_php_form("a[b][c]=1&a[b][d]=2&x[]=p&x[]=q&y[0]=r&empty=")
    assert form == {"a": {"b": {"c": "1", "d": "2"}}, "x": ["p", "q"], "y": ["r"], "empty": ""}


def test_parse_cyrillic_and_plus_as_space():
    form = parse_php_form("data%5BFIELDS%5D%5BTITLE%5D=%D0%A1%D0%B4%D0%B5%D0%BB%D0%BA%D0%B0+1")
    assert form == {"data": {"FIELDS": {"TITLE": "Сделка 1"}}}


@pytest.mark.parametrize(
    "body",
    [
        b"a=%FF%FE",  # not UTF-8 once decoded
        b"\xff\xfe\x00junk",  # raw binary
        b"a=1&a[b]=2",  # a value and a container at once
        b"a[b]=2&a=1",
        b"a[b]]=1",  # unbalanced brackets
        b"[x]=1",  # no name before the brackets
        b"a[1][2][3][4][5][6]=deep",
    ],
)
def test_malformed_forms_are_refused(body):
    with pytest.raises(MalformedForm):
        parse_php_form(body)


def test_too_many_fields_is_refused():
    with pytest.raises(MalformedForm, match="more than"):
        parse_php_form("&".join(f"f{i}=1" for i in range(201)))


@pytest.mark.parametrize(
    "body",
    [
        "&".join(f"data[FIELDS][F{i}]=x" for i in range(5000)),  # thousands of fields
        "data" + "[a]" * 100_000 + "=x",  # a key nested 100,000 deep
        "data[" + "k" * 100_000 + "]=x",  # one 100 kB key
        "a[1][2][3][4][5][6]=deep",
    ],
)
def test_forms_over_a_bound_are_too_large_not_just_malformed(body):
    """Bounds are their own error (the bridge answers 413 form_too_large), checked before the
    form is built: a hostile key costs a count, not a parse."""
    with pytest.raises(FormTooLarge):
        parse_php_form(body)


@pytest.mark.parametrize(
    ("event", "entity", "kind"),
    [(name, entity, kind) for name, (entity, kind) in sorted(SUPPORTED.items())],
)
def test_every_supported_event_is_classified(event, entity, kind):
    type_id = 1220 if entity == "item" else None
    form = parse_php_form(event_body(event, 24, entity_type_id=type_id))
    ref = classify(event_name(form), form)
    assert (ref.entity, ref.kind, ref.id, ref.event) == (entity, kind, "24", event)
    expected_key = "item:1220:24" if entity == "item" else f"{entity}:24"
    assert ref.key == expected_key


def test_event_names_are_case_insensitive():
    form = parse_php_form(event_body("onCrmCompanyAdd", 5))
    assert classify(event_name(form), form).key == "company:5"


def test_task_delete_reads_fields_before_when_after_is_undefined():
    form = parse_php_form(event_body("ONTASKDELETE", 123))
    assert form["data"]["FIELDS_AFTER"] == "undefined"
    ref = classify(event_name(form), form)
    assert (ref.key, ref.kind) == ("task:123", "DELETE")


def test_smart_process_without_entity_type_is_malformed():
    form = parse_php_form(event_body("ONCRMDYNAMICITEMUPDATE", 24))
    with pytest.raises(MalformedEvent) as err:
        classify(event_name(form), form)
    assert err.value.field == "data[FIELDS][ENTITY_TYPE_ID]"


@pytest.mark.parametrize("ident", ["", "0", "-1", "12a", "1 OR 1=1", "9" * 25])
def test_bad_ids_are_malformed(ident):
    form = parse_php_form(php_form({"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": ident}}}))
    with pytest.raises(MalformedEvent):
        classify(event_name(form), form)


def test_install_callback_is_unsupported():
    form = parse_php_form(install_body())
    with pytest.raises(UnsupportedEvent) as err:
        classify(event_name(form), form)
    assert err.value.reason == "lifecycle"


def test_other_events_are_unsupported():
    form = parse_php_form(event_body("ONCRMACTIVITYADD", 9))
    with pytest.raises(UnsupportedEvent) as err:
        classify(event_name(form), form)
    assert err.value.reason == "unknown_event"


def test_placement_open_is_not_an_event():
    with pytest.raises(NotAnEvent) as err:
        event_name(parse_php_form(placement_body()))
    assert err.value.reason == "placement"


@pytest.mark.parametrize(
    "body", [b"", b"foo=bar", b"event=", b"event=%3Cscript%3E", b"event[]=ONCRMDEALADD"]
)
def test_forms_without_an_event_are_not_events(body):
    with pytest.raises(NotAnEvent):
        event_name(parse_php_form(body))


@pytest.mark.parametrize("drop", ["member_id", "application_token"])
def test_missing_portal_auth(drop):
    doc = json.loads(
        json.dumps(
            {
                "event": "ONCRMDEALADD",
                "data": {"FIELDS": {"ID": "1"}},
                "auth": {"member_id": MEMBER_ID, "application_token": APP_TOKEN},
            }
        )
    )
    del doc["auth"][drop]
    with pytest.raises(MissingPortalAuth):
        portal_auth(parse_php_form(php_form(doc)))


def test_record_round_trip_and_stable_event_id():
    ref = EventRef("item", "24", "UPDATE", "ONCRMDYNAMICITEMUPDATE", "1220")
    record = ref.record(
        member_id=MEMBER_ID,
        domain=DOMAIN,
        ts="1736405807",
        handler_id="5",
        received_at="2026-01-01T00:00:00Z",
    )
    assert record["key"] == "item:1220:24"
    assert EventRef.from_record(json.loads(json.dumps(record))) == ref
    a = cloud_event(ref, origin=DOMAIN, occurrence="m:ONCRMDYNAMICITEMUPDATE:1736405807", time="t")
    b = cloud_event(ref, origin=DOMAIN, occurrence="m:ONCRMDYNAMICITEMUPDATE:1736405807", time="u")
    c = cloud_event(ref, origin=DOMAIN, occurrence="m:ONCRMDYNAMICITEMUPDATE:1736405809", time="t")
    assert a.id == b.id != c.id
    assert (a.source, a.subject) == (f"/bitrix24/{DOMAIN}", "item:1220:24")
    assert epoch_iso("1736405807") == "2025-01-09T06:56:47Z"
    assert epoch_iso("soon") is None


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"entity": "deal", "kind": "UPDATE"},
        {"entity": "deal", "kind": "UPDATE", "id": "x"},
        {"entity": "invoice", "kind": "UPDATE", "id": "1"},
        {"entity": "item", "kind": "UPDATE", "id": "1"},
        {"entity": "deal", "kind": "UPDATE", "id": "1", "entity_type_id": "2"},
    ],
)
def test_invalid_event_records(doc):
    with pytest.raises(InvalidRecord):
        EventRef.from_record(doc)


def test_authorization_code_redirect_is_recognised_from_query_or_form():
    query = {
        "code": "c0de",
        "state": "s",
        "domain": DOMAIN,
        "member_id": MEMBER_ID,
        "scope": "crm",
        "server_domain": "oauth.bitrix.info",
    }
    for params in (query, parse_php_form(php_form(query))):
        found = authorization_code(params)
        assert (found.code, found.domain, found.member_id, found.state, found.server_domain) == (
            "c0de",
            DOMAIN,
            MEMBER_ID,
            "s",
            "oauth.bitrix.info",
        )
        assert "c0de" not in repr(found)  # the one-time code stays out of logs


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"code": "c"},
        {"code": "c", "domain": DOMAIN},
        {"code": "", "domain": DOMAIN, "member_id": MEMBER_ID},
        {"code": "c", "domain": DOMAIN, "member_id": MEMBER_ID, "event": "ONCRMDEALADD"},
        {"code": ["c"], "domain": DOMAIN, "member_id": MEMBER_ID},
        "code=c",
    ],
)
def test_what_is_not_an_authorization_code_redirect(params):
    assert authorization_code(params) is None


def test_onappinstall_carries_the_portal_and_its_tokens():
    found = app_install(parse_php_form(install_body()))
    assert (found.member_id, found.application_token, found.domain) == (
        MEMBER_ID,
        APP_TOKEN,
        DOMAIN,
    )
    assert found.access_token == "s6p6eclrvim6da22ft9ch94ekreb52lv"
    assert found.refresh_token == "4s386p3q0tr8dy89xvmt96234v3dljg8"
    assert APP_TOKEN not in repr(found) and found.refresh_token not in repr(found)


def test_onappinstall_without_its_refresh_token_is_refused():
    form = parse_php_form(install_body())
    del form["auth"]["refresh_token"]
    with pytest.raises(MissingPortalAuth) as err:
        app_install(form)
    assert err.value.field == "auth[refresh_token]"
