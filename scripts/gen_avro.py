"""Write avro/<entity>.avsc for every canonical entity model (``make avro``).

The models in mmstream/models are the single description of an entity; a test fails when a
committed schema differs from what its model generates, and another when a change is not
BACKWARD compatible with the schema's last committed version.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmstream.avro_gen import schema_for  # noqa: E402
from mmstream.models.catalog import entity_models  # noqa: E402


def render(entity: str) -> str:
    """The committed text of ``avro/<entity>.avsc``."""
    return (
        json.dumps(schema_for(entity_models()[entity], entity), ensure_ascii=False, indent=2) + "\n"
    )


def main() -> None:
    for entity in sorted(entity_models()):
        path = ROOT / "avro" / f"{entity}.avsc"
        path.write_text(render(entity), encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
