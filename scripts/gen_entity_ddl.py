"""Print (or ``--write`` into migration 0007) the CREATE TABLE statements of every canonical
entity. tests/stages/sink/test_entity_table.py fails when a model and its table disagree."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmstream.models.catalog import entity_models  # noqa: E402
from stages.sink.entity_table import ddl  # noqa: E402

MIGRATION = ROOT / "migrations" / "versions" / "0007_entities.py"
# Entities whose tables later migrations create (0007 must not create them too).
LATER = {
    "stock": "0015_stock.py",
    "contract": "0016_commerceml_fields.py",
    "product": "0024_product_canonical.py",
}


def block() -> str:
    """The generated ``ENTITY_TABLES`` literal."""
    lines = ["ENTITY_TABLES: dict[str, str] = {"]
    for name, model in sorted(entity_models().items()):
        if name in LATER:
            continue
        lines.append(f'    "{name}": """\n{ddl(model)}\n""",')
    lines.append("}")
    return "\n".join(lines)


def main() -> None:
    if "--write" not in sys.argv:
        print(block())
        return
    text = MIGRATION.read_text(encoding="utf-8")
    new = re.sub(
        r"(# BEGIN ENTITY TABLES\n).*?(\n# END ENTITY TABLES)",
        lambda m: m.group(1) + block() + m.group(2),
        text,
        flags=re.S,
    )
    MIGRATION.write_text(new, encoding="utf-8")
    print(f"wrote {MIGRATION.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
