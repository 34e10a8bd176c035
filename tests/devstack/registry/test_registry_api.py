"""The registry API against a real PostgreSQL: Confluent shapes, error codes, compatibility,
concurrency, and a round trip with confluent-kafka's own registry client and Avro serdes."""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient

from devstack.registry.app import MEDIA_TYPE, create_app
from mmstream.serve import free_port

JSON_HEADERS = {"Content-Type": MEDIA_TYPE}

V1 = {
    "type": "record",
    "name": "Product",
    "namespace": "ru.mm.test",
    "fields": [{"name": "id", "type": "string"}],
}
V2 = {
    "type": "record",
    "name": "Product",
    "namespace": "ru.mm.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "name", "type": "string", "default": ""}],
}
# Adds a field without a default: not BACKWARD compatible with V1.
V2_BAD = {
    "type": "record",
    "name": "Product",
    "namespace": "ru.mm.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "price", "type": "long"}],
}


def compact(schema) -> str:
    return json.dumps(schema, separators=(",", ":"))


@pytest.fixture
def client(db_url) -> Iterator[TestClient]:
    # The context manager runs the lifespan, which disposes the engine afterwards.
    with TestClient(create_app(db_url)) as test_client:
        yield test_client


def register(client: TestClient, subject: str, schema, **extra):
    body = {"schema": schema if isinstance(schema, str) else json.dumps(schema), **extra}
    return client.post(f"/subjects/{subject}/versions", json=body, headers=JSON_HEADERS)


def registered_id(client: TestClient, subject: str, schema) -> int:
    resp = register(client, subject, schema)
    assert resp.status_code == 200, resp.text
    return resp.json()["id"]


def assert_error(resp, status: int, error_code: int, contains: str = "") -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(MEDIA_TYPE)
    body = resp.json()
    assert body["error_code"] == error_code
    assert contains in body["message"]


# ---------------------------------------------------------------- register and read


def test_register_is_idempotent(client):
    first = registered_id(client, "orders-value", V1)
    # Whitespace and key order do not make a different schema.
    reordered = json.dumps(
        {"fields": V1["fields"], "namespace": "ru.mm.test", "name": "Product", "type": "record"},
        indent=2,
    )
    assert registered_id(client, "orders-value", V1) == first
    assert registered_id(client, "orders-value", reordered) == first
    assert client.get("/subjects/orders-value/versions").json() == [1]


def test_same_schema_in_another_subject_shares_the_global_id(client):
    first = registered_id(client, "a-value", V1)
    registered_id(client, "a-value", V2)
    again = registered_id(client, "b-value", V1)
    assert again == first
    assert client.get("/subjects/b-value/versions").json() == [1]
    usages = client.get(f"/schemas/ids/{first}/versions").json()
    assert usages == [{"subject": "a-value", "version": 1}, {"subject": "b-value", "version": 1}]
    assert client.get(f"/schemas/ids/{first}/subjects").json() == ["a-value", "b-value"]


def test_get_versions_latest_and_raw_schema(client):
    id1 = registered_id(client, "p-value", V1)
    id2 = registered_id(client, "p-value", V2)
    assert id1 != id2
    assert client.get("/subjects").json() == ["p-value"]
    assert client.get("/subjects/p-value/versions").json() == [1, 2]

    resp = client.get("/subjects/p-value/versions/1")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith(MEDIA_TYPE)
    # No schemaType for AVRO, exactly as Confluent answers.
    assert resp.json() == {"subject": "p-value", "version": 1, "id": id1, "schema": compact(V1)}
    latest = client.get("/subjects/p-value/versions/latest").json()
    assert (latest["version"], latest["id"]) == (2, id2)
    assert client.get("/subjects/p-value/versions/-1").json()["version"] == 2

    raw = client.get("/subjects/p-value/versions/latest/schema")
    assert raw.status_code == 200 and json.loads(raw.text) == V2
    assert client.get(f"/schemas/ids/{id2}").json() == {"schema": compact(V2)}
    assert client.get("/schemas/types").json() == ["AVRO"]


def test_schema_text_is_stored_compact(client, db_url):
    schema_id = registered_id(client, "c-value", json.dumps(V1, indent=4))
    assert client.get(f"/schemas/ids/{schema_id}").json()["schema"] == compact(V1)
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        canonical, fingerprint = conn.execute(
            "SELECT canonical, fingerprint FROM registry_schema WHERE id = %s", (schema_id,)
        ).fetchone()
    assert canonical == compact(V1)
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0  # SHA-256, hex


def test_logical_type_or_default_makes_a_new_schema(client):
    # The Parsing Canonical Form drops both; the registry must not, or the newer schema
    # would silently get the old id and text.
    plain = {"type": "record", "name": "E", "fields": [{"name": "at", "type": "long"}]}
    stamped = {
        "type": "record",
        "name": "E",
        "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
    }
    defaulted = {
        "type": "record",
        "name": "E",
        "fields": [{"name": "at", "type": "long", "default": 0}],
    }
    ids = {registered_id(client, "e-value", s) for s in (plain, stamped, defaulted)}
    assert len(ids) == 3
    assert client.get("/subjects/e-value/versions").json() == [1, 2, 3]


def test_lookup(client):
    schema_id = registered_id(client, "l-value", V1)
    resp = client.post("/subjects/l-value", json={"schema": json.dumps(V1)}, headers=JSON_HEADERS)
    assert resp.status_code == 200
    assert resp.json() == {
        "subject": "l-value",
        "id": schema_id,
        "version": 1,
        "schema": compact(V1),
    }
    missing = client.post(
        "/subjects/l-value", json={"schema": json.dumps(V2)}, headers=JSON_HEADERS
    )
    assert_error(missing, 404, 40403, "Schema not found")
    no_subject = client.post(
        "/subjects/nope", json={"schema": json.dumps(V1)}, headers=JSON_HEADERS
    )
    assert_error(no_subject, 404, 40401, "Subject 'nope' not found.")


def test_not_found_errors(client):
    registered_id(client, "n-value", V1)
    assert_error(client.get("/subjects/nope/versions"), 404, 40401, "Subject 'nope' not found.")
    assert_error(client.get("/subjects/nope/versions/latest"), 404, 40401)
    assert_error(client.get("/subjects/n-value/versions/7"), 404, 40402, "Version 7 not found.")
    assert_error(client.get("/subjects/n-value/versions/zero"), 422, 42202)
    assert_error(client.get("/subjects/n-value/versions/0"), 422, 42202)
    assert_error(client.get("/schemas/ids/999"), 404, 40403, "Schema 999 not found")
    assert_error(client.get("/schemas/ids/999/versions"), 404, 40403)
    assert_error(client.get("/no/such/path"), 404, 404)


# ---------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    "schema, expected",
    [
        (
            '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nosuchtype"}]}',
            "nosuchtype",
        ),
        (
            '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "int", "default": "x"}]}',
            "Default value",
        ),
        ('{"type": "record", "name": "X"}', "fields"),
        (
            '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "int"},'
            ' {"name": "a", "type": "long"}]}',
            "duplicate field",
        ),
        ('["int", "int"]', "twice"),
        ("{not json", "not JSON"),
        ("", "non-empty"),
    ],
)
def test_invalid_avro_is_42201(client, schema, expected):
    resp = register(client, "bad-value", schema)
    assert_error(resp, 422, 42201, expected)
    assert_error(client.get("/subjects/bad-value/versions"), 404, 40401)


def test_only_avro_is_supported(client):
    resp = register(client, "j-value", '{"type": "object"}', schemaType="JSON")
    assert_error(resp, 422, 42201, "AVRO")
    refs = register(
        client, "r-value", V1, references=[{"name": "x.Y", "subject": "y-value", "version": 1}]
    )
    assert_error(refs, 422, 42201, "references")
    assert registered_id(client, "ok-value", V1) > 0  # explicit schemaType AVRO is fine
    assert register(client, "ok2-value", V1, schemaType="AVRO").status_code == 200


def test_request_content_types(client):
    body = json.dumps({"schema": json.dumps(V1)})
    for content_type in ("application/json", MEDIA_TYPE, "application/json; charset=utf-8"):
        resp = client.post(
            "/subjects/ct-value/versions", content=body, headers={"Content-Type": content_type}
        )
        assert resp.status_code == 200, (content_type, resp.text)
    resp = client.post(
        "/subjects/ct-value/versions", content=body, headers={"Content-Type": "text/plain"}
    )
    assert_error(resp, 415, 415)
    resp = client.post(
        "/subjects/ct-value/versions", content="{oops", headers={"Content-Type": MEDIA_TYPE}
    )
    assert_error(resp, 400, 400)


# ---------------------------------------------------------------- compatibility


def test_incompatible_registration_is_409(client):
    registered_id(client, "i-value", V1)
    resp = register(client, "i-value", V2_BAD)
    assert_error(resp, 409, 409, "incompatible")
    assert "price" in resp.json()["message"]
    assert client.get("/subjects/i-value/versions").json() == [1]
    # A compatible evolution still goes through.
    registered_id(client, "i-value", V2)
    assert client.get("/subjects/i-value/versions").json() == [1, 2]


def test_subject_level_none_allows_incompatible(client):
    registered_id(client, "x-value", V1)
    resp = client.put("/config/x-value", json={"compatibility": "NONE"}, headers=JSON_HEADERS)
    assert resp.json() == {"compatibility": "NONE"}
    registered_id(client, "x-value", V2_BAD)
    assert client.get("/subjects/x-value/versions").json() == [1, 2]
    # Other subjects keep the global BACKWARD level.
    registered_id(client, "y-value", V1)
    assert register(client, "y-value", V2_BAD).status_code == 409


def test_transitive_level_checks_all_versions(client):
    client.put("/config", json={"compatibility": "BACKWARD_TRANSITIVE"}, headers=JSON_HEADERS)
    v1 = {"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]}
    v2 = {
        "type": "record",
        "name": "T",
        "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0}],
    }
    v3 = {
        "type": "record",
        "name": "T",
        "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "int"}],
    }
    registered_id(client, "t-value", v1)
    registered_id(client, "t-value", v2)
    assert_error(register(client, "t-value", v3), 409, 409, "version 1")
    client.put("/config", json={"compatibility": "BACKWARD"}, headers=JSON_HEADERS)
    registered_id(client, "t-value", v3)


def test_compatibility_endpoint(client):
    registered_id(client, "k-value", V1)
    url = "/compatibility/subjects/k-value/versions/latest"
    good = client.post(url, json={"schema": json.dumps(V2)}, headers=JSON_HEADERS)
    assert good.status_code == 200 and good.json() == {"is_compatible": True}
    bad = client.post(url, json={"schema": json.dumps(V2_BAD)}, headers=JSON_HEADERS)
    assert bad.json() == {"is_compatible": False}
    verbose = client.post(
        url + "?verbose=true", json={"schema": json.dumps(V2_BAD)}, headers=JSON_HEADERS
    ).json()
    assert verbose["is_compatible"] is False and "price" in verbose["messages"][0]
    by_number = client.post(
        "/compatibility/subjects/k-value/versions/1",
        json={"schema": json.dumps(V2_BAD)},
        headers=JSON_HEADERS,
    )
    assert by_number.json() == {"is_compatible": False}
    all_versions = client.post(
        "/compatibility/subjects/k-value/versions",
        json={"schema": json.dumps(V2)},
        headers=JSON_HEADERS,
    )
    assert all_versions.json() == {"is_compatible": True}
    # Checking does not register.
    assert client.get("/subjects/k-value/versions").json() == [1]
    assert_error(
        client.post(
            "/compatibility/subjects/nope/versions/latest",
            json={"schema": json.dumps(V1)},
            headers=JSON_HEADERS,
        ),
        404,
        40401,
    )
    assert_error(
        client.post(
            "/compatibility/subjects/k-value/versions/9",
            json={"schema": json.dumps(V1)},
            headers=JSON_HEADERS,
        ),
        404,
        40402,
    )


def test_compatibility_endpoint_honours_the_level(client):
    registered_id(client, "f-value", V1)
    client.put("/config/f-value", json={"compatibility": "FORWARD"}, headers=JSON_HEADERS)
    # Adding a field without default is FORWARD compatible (old readers ignore it)...
    resp = client.post(
        "/compatibility/subjects/f-value/versions/latest",
        json={"schema": json.dumps(V2_BAD)},
        headers=JSON_HEADERS,
    )
    assert resp.json() == {"is_compatible": True}
    client.put("/config/f-value", json={"compatibility": "FULL"}, headers=JSON_HEADERS)
    # ...but not FULL, which also needs new readers to read old data.
    resp = client.post(
        "/compatibility/subjects/f-value/versions/latest",
        json={"schema": json.dumps(V2_BAD)},
        headers=JSON_HEADERS,
    )
    assert resp.json() == {"is_compatible": False}


# ---------------------------------------------------------------- config


def test_config(client):
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    resp = client.put("/config", json={"compatibility": "full"}, headers=JSON_HEADERS)
    assert resp.status_code == 200 and resp.json() == {"compatibility": "FULL"}
    assert client.get("/config").json() == {"compatibilityLevel": "FULL"}

    # Like Confluent: a subject without its own level is a 40408 unless asked to fall back.
    assert_error(client.get("/config/s-value"), 404, 40408)
    assert client.get("/config/s-value?defaultToGlobal=true").json() == {
        "compatibilityLevel": "FULL"
    }
    client.put("/config/s-value", json={"compatibility": "NONE"}, headers=JSON_HEADERS)
    assert client.get("/config/s-value").json() == {"compatibilityLevel": "NONE"}
    assert client.delete("/config/s-value").json() == {"compatibilityLevel": "NONE"}
    assert_error(client.get("/config/s-value"), 404, 40408)

    assert_error(
        client.put("/config", json={"compatibility": "SIDEWAYS"}, headers=JSON_HEADERS), 422, 42203
    )
    assert_error(client.put("/config/s-value", json={}, headers=JSON_HEADERS), 422, 42203)
    assert client.delete("/config").json() == {"compatibilityLevel": "FULL"}
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}


# ---------------------------------------------------------------- delete


def test_soft_delete_version(client):
    id1 = registered_id(client, "d-value", V1)
    registered_id(client, "d-value", V2)
    resp = client.delete("/subjects/d-value/versions/1")
    assert resp.status_code == 200 and resp.json() == 1
    assert client.get("/subjects/d-value/versions").json() == [2]
    assert client.get("/subjects/d-value/versions?deleted=true").json() == [1, 2]
    assert_error(client.get("/subjects/d-value/versions/1"), 404, 40402)
    assert client.get("/subjects/d-value/versions/1?deleted=true").json()["id"] == id1
    assert_error(client.delete("/subjects/d-value/versions/1"), 404, 40406)
    # Consumers still resolve ids of deleted versions.
    assert client.get(f"/schemas/ids/{id1}").status_code == 200
    assert client.delete("/subjects/d-value/versions/latest").json() == 2
    assert_error(client.get("/subjects/d-value/versions"), 404, 40401)


def test_soft_and_permanent_delete_subject(client):
    schema_id = registered_id(client, "s-value", V1)
    registered_id(client, "s-value", V2)
    client.put("/config/s-value", json={"compatibility": "NONE"}, headers=JSON_HEADERS)
    assert_error(client.delete("/subjects/s-value?permanent=true"), 404, 40405)
    assert client.delete("/subjects/s-value").json() == [1, 2]
    assert client.get("/subjects").json() == []
    assert client.get("/subjects?deleted=true").json() == ["s-value"]
    assert client.get("/subjects?deleted_only=true").json() == ["s-value"]
    assert_error(client.get("/config/s-value"), 404, 40408)  # dropped with the subject
    assert_error(client.delete("/subjects/s-value"), 404, 40404)
    assert_error(
        client.post("/subjects/s-value", json={"schema": json.dumps(V1)}, headers=JSON_HEADERS),
        404,
        40401,
    )

    # Registering again continues the numbering and keeps the global id.
    assert registered_id(client, "s-value", V1) == schema_id
    assert client.get("/subjects/s-value/versions").json() == [3]
    assert client.get("/subjects/s-value/versions?deleted=true").json() == [2, 3]

    client.delete("/subjects/s-value")
    assert client.delete("/subjects/s-value?permanent=true").json() == [2, 3]
    assert client.get("/subjects?deleted=true").json() == []
    assert_error(client.delete("/subjects/s-value"), 404, 40401)


def test_permanent_version_delete_needs_soft_delete_first(client):
    registered_id(client, "pv-value", V1)
    assert_error(client.delete("/subjects/pv-value/versions/1?permanent=true"), 404, 40407)
    client.delete("/subjects/pv-value/versions/1")
    assert client.delete("/subjects/pv-value/versions/1?permanent=true").json() == 1
    assert_error(client.get("/subjects/pv-value/versions?deleted=true"), 404, 40401)


def test_health(client):
    resp = client.get("/health")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


# ---------------------------------------------------------------- over real HTTP


@contextmanager
def serve(database_url: str) -> Iterator[str]:
    """The app under uvicorn on a free loopback port, in a background thread."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(database_url), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="registry-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "registry server thread died while starting"
        assert time.monotonic() < deadline, "registry server did not start in 15 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def registry(db_url) -> Iterator[str]:
    with serve(db_url) as url:
        yield url


def test_concurrent_registrations_make_one_id_and_one_version(registry, db_url):
    def post(subject: str, schema: dict) -> int:
        resp = httpx.post(
            f"{registry}/subjects/{subject}/versions",
            content=json.dumps({"schema": json.dumps(schema)}),
            headers=JSON_HEADERS,
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["id"]

    jobs = [("same-value", V1)] * 8 + [(f"other{i}-value", V1) for i in range(8)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(lambda job: post(*job), jobs))
    assert len(set(ids)) == 1
    assert httpx.get(f"{registry}/subjects/same-value/versions").json() == [1]
    usages = httpx.get(f"{registry}/schemas/ids/{ids[0]}/versions").json()
    assert len(usages) == 9 and all(u["version"] == 1 for u in usages)
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        assert conn.execute("SELECT count(*) FROM registry_schema").fetchone()[0] == 1


def test_concurrent_evolutions_get_distinct_versions(registry):
    schemas = [
        {
            "type": "record",
            "name": "C",
            "fields": [
                {"name": "id", "type": "string"},
                {"name": f"f{i}", "type": "int", "default": i},
            ],
        }
        for i in range(6)
    ]

    def post(schema: dict) -> int:
        resp = httpx.post(
            f"{registry}/subjects/evo-value/versions",
            json={"schema": json.dumps(schema)},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["id"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(post, schemas))
    assert len(set(ids)) == 6
    assert httpx.get(f"{registry}/subjects/evo-value/versions").json() == [1, 2, 3, 4, 5, 6]


def test_confluent_client_round_trip(registry):
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    from confluent_kafka.serialization import MessageField, SerializationContext

    schema = {
        "type": "record",
        "name": "Product",
        "namespace": "ru.mm.test",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "qty", "type": "int"},
            {"name": "price", "type": ["null", "double"], "default": None},
            {"name": "changed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    }
    record = {"id": "p-1", "qty": 3, "price": 9.5, "changed_at": 1_700_000_000_000}
    ctx = SerializationContext("norm.product", MessageField.VALUE)
    client = SchemaRegistryClient({"url": registry})

    serializer = AvroSerializer(client, json.dumps(schema))
    payload = serializer(record, ctx)
    magic, schema_id = struct.unpack(">bI", payload[:5])
    assert magic == 0

    latest = client.get_latest_version("norm.product-value")
    assert (latest.schema_id, latest.version) == (schema_id, 1)
    assert json.loads(latest.schema.schema_str) == schema

    # A fresh client, so the writer schema really comes from the registry by id.
    consumer_client = SchemaRegistryClient({"url": registry})
    value = AvroDeserializer(consumer_client)(payload, ctx)
    assert value["id"] == "p-1" and value["qty"] == 3 and value["price"] == 9.5
    assert int(value["changed_at"].timestamp() * 1000) == record["changed_at"]

    assert client.get_subjects() == ["norm.product-value"]
    assert client.get_versions("norm.product-value") == [1]
    found = consumer_client.lookup_schema("norm.product-value", Schema(json.dumps(schema), "AVRO"))
    assert (found.schema_id, found.version) == (schema_id, 1)

    widened = dict(
        schema, fields=schema["fields"] + [{"name": "note", "type": "string", "default": ""}]
    )
    assert client.test_compatibility("norm.product-value", Schema(json.dumps(widened), "AVRO"))
    narrowed = dict(
        schema,
        fields=[f for f in schema["fields"] if f["name"] != "qty"]
        + [{"name": "must", "type": "string"}],
    )
    assert not client.test_compatibility("norm.product-value", Schema(json.dumps(narrowed), "AVRO"))
    with pytest.raises(SchemaRegistryError) as err:
        client.register_schema("norm.product-value", Schema(json.dumps(narrowed), "AVRO"))
    assert err.value.http_status_code == 409 and err.value.error_code == 409

    client.set_compatibility("norm.product-value", "FULL")
    assert client.get_compatibility("norm.product-value") == "FULL"
    assert client.get_compatibility() == "BACKWARD"
    assert client.get_schema_types() == ["AVRO"]
    assert client.delete_subject("norm.product-value") == [1]
    assert client.get_subjects() == []
