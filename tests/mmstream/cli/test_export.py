"""``mmctl export`` against the real broker and schema registry: Avro records produced with
the project's own encoder (as the outbox relay writes them), read back from the Parquet and
CSV files with DuckDB."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import duckdb
import pytest
from confluent_kafka import Producer

from mmstream.avro_gen import avro_record
from mmstream.avro_serde import AvroEncoder
from mmstream.kafka.admin import apply
from mmstream.models.price import Price
from mmstream.models.product import Product
from mmstream.topics import load_catalog
from tests.mmstream.cli.conftest import Mmctl


@pytest.fixture
def export_settings(settings, registry_url):
    s = settings.model_copy(update={"schema_registry_url": registry_url})
    apply(s, load_catalog(s.topics_file))
    return s


class Topic:
    """Produces a normalized entity topic's records, keyed by id, as the relay does."""

    def __init__(self, settings, entity: str, schema_path=None) -> None:
        spec = load_catalog(settings.topics_file)[f"norm.{entity}"]
        self.name = settings.topic(spec.name)
        self.encoder = AvroEncoder(
            schema_path or settings.schemas_dir / spec.schema,
            settings.schema_registry_url,
            f"{self.name}-value",
        )
        self.producer = Producer({**settings.kafka.client_config(), "acks": "all"})
        self.changed_at = datetime(2026, 12, 1, 8, 30, 15, 123000, tzinfo=UTC)

    def send(self, entity, revision: int | None = None, drop: tuple[str, ...] = ()) -> None:
        value = {
            **avro_record(entity),
            "event_id": str(uuid.uuid4()),
            "changed_at": self.changed_at,
        }
        for name in drop:
            del value[name]
        if revision is not None:
            value["revision"] = revision
        self.producer.produce(
            self.name, key=str(entity.id).encode(), value=self.encoder.encode(value)
        )

    def tombstone(self, key: uuid.UUID) -> None:
        self.producer.produce(self.name, key=str(key).encode(), value=None)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def _price(ident: uuid.UUID, price: str, deleted: bool = False) -> Price:
    return Price(
        id=ident,
        source="onec",
        version=price,
        price=Decimal(price),
        currency="RUB",
        deleted=deleted,
        external_ids={"onec": str(ident)},
        valid_from=datetime(2026, 11, 30, 21, 0, tzinfo=UTC),
    )


def test_export_writes_the_latest_revision_per_key_without_deleted_keys(export_settings, tmp_path):
    # An older version of the price schema (without recorder_id) is registered first and
    # writes one record: the export reads it with the newest schema, the new field null.
    schema = json.loads((export_settings.schemas_dir / "price.avsc").read_text("utf-8"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "recorder_id"]
    old_schema = tmp_path / "price-v1.avsc"
    old_schema.write_text(json.dumps(schema), "utf-8")
    old = Topic(export_settings, "price", schema_path=old_schema)
    prices, products = Topic(export_settings, "price"), Topic(export_settings, "product")
    assert old.encoder.schema_id != prices.encoder.schema_id
    kept, deleted, single, early = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    old.send(_price(early, "7.00"), revision=1, drop=("recorder_id",))
    old.flush()
    prices.send(_price(kept, "100.50"), revision=1)
    prices.send(_price(kept, "101.25"), revision=2)
    prices.send(_price(kept, "99999999.1234"), revision=3)
    prices.send(_price(kept, "101.25"), revision=2)  # redelivered late (at least once)
    prices.send(_price(deleted, "5.00"), revision=1)
    prices.send(_price(deleted, "5.00", deleted=True), revision=2)
    prices.tombstone(deleted)
    prices.send(_price(single, "0.0001"), revision=1)
    renamed, dropped = uuid.uuid4(), uuid.uuid4()
    # Products are canonical too: their records carry the revision the catalog's rule keeps.
    products.send(Product(id=renamed, source="onec", version="v1", name="Мойка"), revision=1)
    products.send(
        Product(
            id=renamed,
            source="onec",
            version="v2",
            name="Мойка кухонная",
            article="M-1",
            properties=({"id": "p1", "name": "Цвет", "value": "белый"},),
        ),
        revision=2,
    )
    products.send(Product(id=dropped, source="onec", version="v1", name="Смеситель"), revision=1)
    products.tombstone(dropped)
    prices.flush()
    products.flush()

    mmctl = Mmctl(export_settings)
    parquet, csv = tmp_path / "out" / "price.parquet", tmp_path / "price.csv"
    run = mmctl("export", "price", "--format", "parquet", "--output", str(parquet))
    assert run.stderr.splitlines()[0] == (
        f"exporting {prices.name} from {export_settings.kafka.bootstrap_servers} "
        f"(schema registry {export_settings.schema_registry_url})"
    )
    mmctl("export", "price", "--format", "csv", "--output", str(csv))
    product_file = tmp_path / "product.parquet"
    mmctl("export", "product", "--format", "parquet", "--output", str(product_file))

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(
        f"SELECT id, price, revision, deleted, changed_at, valid_from, external_ids, "
        f"recorder_id FROM '{parquet}' ORDER BY revision DESC, price"
    ).fetchall()
    valid_from = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    assert rows == [
        (
            str(kept),
            Decimal("99999999.1234"),
            3,
            False,
            prices.changed_at,
            valid_from,
            {"onec": str(kept)},
            None,
        ),
        (
            str(single),
            Decimal("0.0001"),
            1,
            False,
            prices.changed_at,
            valid_from,
            {"onec": str(single)},
            None,
        ),
        (
            str(early),
            Decimal("7.0000"),
            1,
            False,
            prices.changed_at,
            valid_from,
            {"onec": str(early)},
            None,
        ),
    ]
    types = dict(
        con.execute(f"SELECT column_name, column_type FROM (DESCRIBE '{parquet}')").fetchall()
    )
    assert types["price"] == "DECIMAL(20,4)" and types["ratio"] == "DECIMAL(20,4)"
    assert types["changed_at"] == types["valid_from"] == "TIMESTAMP WITH TIME ZONE"
    assert types["revision"] == "BIGINT" and types["deleted"] == "BOOLEAN"
    schema = {
        name: (logical, converted)
        for name, logical, converted in con.execute(
            f"SELECT name, logical_type, converted_type FROM parquet_schema('{parquet}')"
        ).fetchall()
    }
    assert schema["price"][1] == "DECIMAL" and "precision=20" in schema["price"][0]
    assert "isAdjustedToUTC=1" in schema["changed_at"][0]

    csv_rows = con.execute(
        f"SELECT id, price::VARCHAR, revision, changed_at, external_ids "
        f"FROM read_csv('{csv}', header = true, all_varchar = true) "
        f"ORDER BY revision DESC, price::DECIMAL(20,4)"
    ).fetchall()
    assert csv_rows == [
        (str(kept), "99999999.1234", "3", "2026-12-01 08:30:15.123+00", f'{{"onec":"{kept}"}}'),
        (str(single), "0.0001", "1", "2026-12-01 08:30:15.123+00", f'{{"onec":"{single}"}}'),
        (str(early), "7.0000", "1", "2026-12-01 08:30:15.123+00", f'{{"onec":"{early}"}}'),
    ]

    products_read = con.execute(
        f"SELECT id, name, version, properties[1].value, changed_at FROM '{product_file}'"
    ).fetchall()
    assert products_read == [(str(renamed), "Мойка кухонная", "v2", "белый", products.changed_at)]


def test_export_exit_codes(export_settings, tmp_path):
    mmctl = Mmctl(export_settings)
    unknown = mmctl("export", "nonsense", "--format", "csv", expect=2)
    assert "no normalized topic for entity 'nonsense'" in unknown.stderr
    mmctl("export", "price", "--format", "xlsx", expect=2)
    # The topics of another prefix do not exist on this cluster: a runtime error.
    other = Mmctl(
        export_settings.model_copy(
            update={
                "kafka": export_settings.kafka.model_copy(
                    update={"topic_prefix": f"missing{uuid.uuid4().hex[:6]}."}
                )
            }
        )
    )
    missing = other(
        "export", "price", "--format", "parquet", "--output", str(tmp_path / "p.parquet"), expect=1
    )
    assert missing.stderr.splitlines()[0].startswith(
        f"exporting {other.settings.kafka.topic_prefix}norm.price from "
        f"{export_settings.kafka.bootstrap_servers}"
    )
    assert "does not exist" in missing.stderr
    assert not (tmp_path / "p.parquet").exists()
    # A value that is not Avro in the wire format: no file rather than a file with a hole.
    bad = Topic(export_settings, "price_type")
    bad.producer.produce(bad.name, key=str(uuid.uuid4()).encode(), value=b"not avro", partition=2)
    bad.flush()
    broken = mmctl(
        "export", "price_type", "--format", "csv", "--output", str(tmp_path / "pt.csv"), expect=1
    )
    assert f"{bad.name}[2]@0 cannot be decoded" in broken.stderr
    assert not list(tmp_path.glob("*pt.csv*"))


def test_export_of_an_empty_topic_writes_a_typed_empty_file(export_settings, tmp_path):
    target = tmp_path / "stock.parquet"
    Mmctl(export_settings)("export", "stock", "--format", "parquet", "--output", str(target))
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM '{target}'").fetchone() == (0,)
    types = dict(
        con.execute(f"SELECT column_name, column_type FROM (DESCRIBE '{target}')").fetchall()
    )
    assert types["changed_at"] == "TIMESTAMP WITH TIME ZONE"
