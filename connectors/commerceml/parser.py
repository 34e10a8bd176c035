"""Streaming reader of CommerceML 2.x documents (the files of 1С's "exchange with site").

A document's root is ``КоммерческаяИнформация``; what it holds is told by the root's
children, not by the file name (the real УТ "import.xml" in the fixtures holds offers):

- ``Классификатор``: groups, properties (and in 2.08+ price types and warehouses), read
  whole — it is small and comes first — and kept as the :class:`Context` of what follows;
- ``Каталог/Товары/Товар``: products, yielded one at a time as ``product`` entries;
- ``ПакетПредложений``: ``ТипыЦен`` and ``Склады`` go to the context, each
  ``Предложения/Предложение`` is yielded as an ``offer`` entry;
- ``Документ`` (orders, the ``sale`` direction): yielded as ``order`` entries.

The namespace ``urn:1C.ru:commerceml_2`` may or may not be present: tags are compared by
local name. The encoding comes from the XML prolog (UTF-8 with or without BOM,
windows-1251). Elements are dropped once yielded, so memory stays bounded by one entry
plus the classifier whatever the file size.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from connectors.commerceml.errors import IncompleteDocument, InvalidDocument

ROOT = "КоммерческаяИнформация"
_ENTRIES = {
    (ROOT, "Каталог", "Товары", "Товар"): "product",
    (ROOT, "ПакетПредложений", "Предложения", "Предложение"): "offer",
    (ROOT, "Документ"): "order",
}
# expat error codes that mean "the input stopped early", i.e. a chunked upload that is not
# complete yet: no element found, unclosed token, partial character.
_TRUNCATED = {3, 5, 6}


def local(tag: str) -> str:
    """The tag without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def text(elem: ET.Element | None) -> str:
    """The element's stripped text; '' when it is absent or empty."""
    if elem is None or elem.text is None:
        return ""
    return elem.text.strip()


def child_text(elem: ET.Element, name: str) -> str:
    """The stripped text of the first child called ``name``."""
    return text(elem.find(name))


@dataclass(frozen=True)
class Property:
    """A classifier property and its dictionary (``ИдЗначения`` -> ``Значение``)."""

    name: str
    values: dict[str, str]


@dataclass(frozen=True)
class PriceType:
    """A ``ТипЦены`` of an offer package."""

    name: str
    currency: str


@dataclass
class Context:
    """What the document declared before its entries: used to resolve ids to names."""

    groups: dict[str, str] = field(default_factory=dict)
    group_parents: dict[str, str] = field(default_factory=dict)
    properties: dict[str, Property] = field(default_factory=dict)
    price_types: dict[str, PriceType] = field(default_factory=dict)
    warehouses: dict[str, str] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    """One product, offer or order element; valid only until the iterator moves on."""

    kind: str
    element: ET.Element
    context: Context


def entries(stream: BinaryIO, ctx: Context | None = None) -> Iterator[Entry]:
    """The entries of a CommerceML document read from ``stream`` (binary, any encoding
    the prolog declares), filling ``ctx`` (given or new) as declarations are read.
    Raises InvalidDocument, or IncompleteDocument when the input stops early."""
    ctx = Context() if ctx is None else ctx
    stack: list[ET.Element] = []
    path: list[str] = []
    # expat ≥ 2.4 bounds entity amplification and ElementTree never loads external
    # entities, which is what defusedxml would add here.
    events = ET.iterparse(stream, events=("start", "end"))  # noqa: S314
    try:
        for event, elem in events:
            if event == "start":
                elem.tag = local(elem.tag)
                if not stack and elem.tag != ROOT:
                    raise InvalidDocument(f"not a CommerceML document: the root is <{elem.tag}>, "
                                          f"expected <{ROOT}>")
                stack.append(elem)
                path.append(elem.tag)
                if len(path) == 2:
                    ctx.sections.append(elem.tag)
                continue
            kind = _ENTRIES.get(tuple(path))
            if kind is not None:
                yield Entry(kind, elem, ctx)
            elif len(path) == 2 and elem.tag == "Классификатор":
                read_classifier(elem, ctx)
            elif tuple(path[:2]) == (ROOT, "ПакетПредложений") and len(path) == 3:
                read_declarations(elem, ctx)
            stack.pop()
            path.pop()
            if stack and (kind is not None or len(path) == 1):
                # Done with it: keep the tree from growing with the file.
                stack[-1].remove(elem)
    except ET.ParseError as exc:
        if exc.code in _TRUNCATED:
            raise IncompleteDocument(f"the XML ends early ({exc}): the file is incomplete") from None
        raise InvalidDocument(f"not well-formed XML: {exc}") from None


def read_classifier(elem: ET.Element, ctx: Context) -> None:
    """Groups (nested, flattened), properties and — CommerceML 2.08+ — price types and
    warehouses of a ``Классификатор``."""
    groups = elem.find("Группы")
    if groups is not None:
        _read_groups(groups, None, ctx)
    for props in elem.iter("Свойства"):
        for prop in props:
            if prop.tag not in ("Свойство", "СвойствоНоменклатуры"):
                continue
            pid = child_text(prop, "Ид")
            if pid:
                values = {child_text(v, "ИдЗначения"): child_text(v, "Значение")
                          for v in prop.iter("Справочник") if child_text(v, "ИдЗначения")}
                ctx.properties[pid] = Property(child_text(prop, "Наименование"), values)
    read_declarations(elem.find("ТипыЦен"), ctx)
    read_declarations(elem.find("Склады"), ctx)


def _read_groups(groups: ET.Element, parent: str | None, ctx: Context) -> None:
    for group in groups.findall("Группа"):
        gid = child_text(group, "Ид")
        if gid:
            ctx.groups[gid] = child_text(group, "Наименование")
            if parent:
                ctx.group_parents[gid] = parent
        nested = group.find("Группы")
        if nested is not None:
            _read_groups(nested, gid or parent, ctx)


def read_declarations(elem: ET.Element | None, ctx: Context) -> None:
    """``ТипыЦен`` and ``Склады`` (of an offer package or a classifier) into the context."""
    if elem is None:
        return
    if elem.tag == "ТипыЦен":
        for ptype in elem.findall("ТипЦены"):
            if child_text(ptype, "Ид"):
                ctx.price_types[child_text(ptype, "Ид")] = PriceType(
                    child_text(ptype, "Наименование"), child_text(ptype, "Валюта"))
    elif elem.tag == "Склады":
        for store in elem.findall("Склад"):
            if child_text(store, "Ид"):
                ctx.warehouses[child_text(store, "Ид")] = child_text(store, "Наименование")
