"""Streaming reader of CommerceML 2.x documents (the files of 1С's "exchange with site").

A document's root is ``КоммерческаяИнформация``; what it holds is told by the root's
children, not by the file name (the real УТ "import.xml" in the fixtures holds offers):

- ``Классификатор``: groups, properties (and in 2.08+ price types and warehouses), read
  whole — it is small and comes first — and kept as the :class:`Context` of what follows
  (a context given by the caller already holds what earlier files of the exchange declared:
  connectors/commerceml/context.py; a re-declared property adds to its dictionary);
- ``Каталог/Товары/Товар``: products, yielded one at a time as ``product`` entries;
- ``ПакетПредложений`` (or ``ИзмененияПакетаПредложений``, 1С's "changes only" package):
  ``ТипыЦен`` and ``Склады`` go to the context, each ``Предложения/Предложение`` is yielded as
  an ``offer`` entry. CommerceML 3.x splits one package over several files (``offers.xml``
  without prices, ``prices.xml``, ``rests.xml``): each is a package of its own and read alike;
- ``Документ`` (orders, the ``sale`` direction): yielded as ``order`` entries — directly
  under the root (CommerceML 2.x) or inside ``Контейнер`` elements (3.x: one container per
  document, ``КоммерческаяИнформация/Контейнер/Документ``);
- ``ТипЦены`` (of ``Классификатор/ТипыЦен`` or ``ПакетПредложений/ТипыЦен``): read into the
  context *and* yielded as ``price_type`` entries — a pure "exchange with site" setup
  declares its price types nowhere else.

The namespace ``urn:1C.ru:commerceml_2`` may or may not be present: tags are compared by
local name. The encoding comes from the XML prolog (UTF-8 with or without BOM,
windows-1251).

Memory stays bounded whatever the file holds: every element is dropped once handled — an
entry once yielded, a declaration (``Группа``, ``Свойство``, ``ТипЦены``, ``Склад``) once read
into the context, anything else (unknown elements included) as soon as it ends — so only
the open path and the entry or declaration being read are in memory, and one of those may
hold at most MAX_HELD_ELEMENTS elements. Nesting deeper than MAX_DEPTH is refused (1С's
files are a dozen levels deep; thousands-deep ``Группы`` are an attack). A DOCTYPE is
refused before anything is parsed: CommerceML has none, and without a DTD no entity can be
declared — no entity expansion bomb, no external entity (what defusedxml's
``forbid_dtd`` does, with the C parser kept for speed).
"""

from __future__ import annotations

import pyexpat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from connectors.commerceml.errors import IncompleteDocument, InvalidDocument

ROOT = "КоммерческаяИнформация"
_ENTRIES = {
    (ROOT, "Каталог", "Товары", "Товар"): "product",
    (ROOT, "ПакетПредложений", "Предложения", "Предложение"): "offer",
    # 1С's "changes only" offers (prices and stock that changed): the same Предложение.
    (ROOT, "ИзмененияПакетаПредложений", "Предложения", "Предложение"): "offer",
    (ROOT, "Документ"): "order",
    (ROOT, "Контейнер", "Документ"): "order",
}
# expat error codes that mean "the input stopped early", i.e. a chunked upload that is not
# complete yet: no element found, unclosed token, partial character.
_TRUNCATED = {3, 5, 6}
MAX_DEPTH = 100
MAX_HELD_ELEMENTS = 100_000
_BLOCK = 1 << 16


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
    # ТипЗначений: "Строка", "Число", "Справочник"…; '' when not declared. A "Справочник"
    # property's values are ИдЗначения of its dictionary, never text.
    value_type: str = ""

    @property
    def is_dictionary(self) -> bool:
        return self.value_type.casefold() == "справочник"


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
    # Of this document only (never carried to another file): the classifier it belongs to
    # (``Классификатор/Ид``, else a section's ``ИдКлассификатора``), the catalog it names
    # (``Каталог/Ид``, ``ИдКаталога``), and whether a section says it holds only changes
    # (``СодержитТолькоИзменения="true"``, or ``ИзмененияПакетаПредложений``).
    classifier_id: str = ""
    catalog_ref: str = ""
    changes_only: bool = False
    # Documents (``Документ``) found where no layout puts them: not read, so the document
    # check refuses the file rather than answer "success" for orders it never saw.
    stray_documents: list[str] = field(default_factory=list)

    @property
    def catalog_key(self) -> str:
        """The id the names of this document belong to: its classifier's, else its catalog's."""
        return self.classifier_id or self.catalog_ref

    @property
    def full_classifier(self) -> bool:
        """The document holds a whole classifier (not only its changes)."""
        return "Классификатор" in self.sections and not self.changes_only


@dataclass(frozen=True)
class Entry:
    """One product, offer or order element; valid only until the iterator moves on."""

    kind: str
    element: ET.Element
    context: Context


class Readable(Protocol):
    """A binary stream to parse: a file, a spool or an archive member."""

    def read(self, size: int = -1, /) -> bytes: ...


def entries(stream: Readable, ctx: Context | None = None) -> Iterator[Entry]:
    """The entries of a CommerceML document read from ``stream`` (binary, any encoding
    the prolog declares), filling ``ctx`` (given or new) as declarations are read.
    Raises InvalidDocument, or IncompleteDocument when the input stops early."""
    reader = _Reader(Context() if ctx is None else ctx)
    screen = _DoctypeScreen()
    pull: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    try:
        while block := stream.read(_BLOCK):
            screen.feed(block)
            pull.feed(block)
            yield from reader.events(pull.read_events())
        pull.close()
        yield from reader.events(pull.read_events())
    except ET.ParseError as exc:
        if exc.code in _TRUNCATED:
            raise IncompleteDocument(
                f"the XML ends early ({exc}): the file is incomplete"
            ) from None
        raise InvalidDocument(f"not well-formed XML: {exc}") from None


class _DoctypeScreen:
    """Refuses a DOCTYPE in the prolog. A second expat parser (no tree, C speed) sees the
    bytes before the main one until the root element starts; after that no DOCTYPE can come."""

    def __init__(self) -> None:
        self.done = False
        self._parser = pyexpat.ParserCreate()
        self._parser.StartDoctypeDeclHandler = self._doctype
        self._parser.StartElementHandler = self._root

    def feed(self, block: bytes) -> None:
        if self.done:
            return
        try:
            self._parser.Parse(block, False)
        except _RootReached:
            self.done = True
        except pyexpat.ExpatError:
            self.done = True  # not XML at all: the main parser says why

    @staticmethod
    def _doctype(*_args) -> None:
        raise InvalidDocument(
            "the document declares a DOCTYPE (a DTD, maybe entities): CommerceML has none, refused"
        )

    @staticmethod
    def _root(*_args) -> None:
        raise _RootReached


class _RootReached(Exception):
    pass


_DECLARING = ("Классификатор", "ПакетПредложений", "ИзмененияПакетаПредложений")
_HEADED = (*_DECLARING, "Каталог")
_CHANGES_ONLY = "СодержитТолькоИзменения"


def _group_path(path: list[str]) -> bool:
    return (
        path[-1] == "Группа"
        and len(path) > 3
        and path[1] == "Классификатор"
        and path[-2] == "Группы"
    )


def _declaration(path: list[str]) -> bool:
    """A declaration read into the context at its end (groups are handled apart)."""
    tag = path[-1]
    if tag in ("Свойство", "СвойствоНоменклатуры"):
        return len(path) > 3 and path[1] == "Классификатор" and path[-2] == "Свойства"
    if (tag, path[-2] if len(path) > 1 else "") in (("ТипЦены", "ТипыЦен"), ("Склад", "Склады")):
        return len(path) == 4 and path[1] in _DECLARING
    return False


_HOLDER_TAGS = frozenset(
    {
        "Товар",
        "Предложение",
        "Документ",
        "Группа",
        "Свойство",
        "СвойствоНоменклатуры",
        "ТипЦены",
        "Склад",
    }
)


def _role(path: list[str]) -> str | None:
    """What an element at ``path`` is to the reader: an entry kind, "group", "declaration"
    (read at its end, then dropped, its subtree held until then), or None."""
    if path[-1] not in _HOLDER_TAGS:  # the common case, decided by one set lookup
        return None
    kind = _ENTRIES.get(tuple(path))
    if kind is not None:
        return kind
    if _group_path(path):
        return "group"
    return "declaration" if _declaration(path) else None


class _Reader:
    """Turns parse events into entries and context, dropping every element once handled."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.stack: list[ET.Element] = []
        self.path: list[str] = []
        # Per open element: its role (see _role); a role holds the element's subtree.
        self.roles: list[str | None] = []
        self.holders = 0
        # Elements held now (inside open entries/declarations), and that count when each
        # open holder started: what is left once it is dropped.
        self.held = 0
        self.marks: list[int] = []
        # Per open Группа: the ids of the groups nested in it (their parent is known at its end).
        self.groups: list[list[str]] = []
        # The last entry's element and its parent: dropped once the consumer moved on.
        self._pending: tuple[ET.Element, ET.Element] | None = None

    def events(self, events) -> Iterator[Entry]:
        start, end = self._start, self._end
        for event, elem in events:
            if event == "start":
                self._drop_pending()
                start(elem)
            elif (entry := end(elem)) is not None:
                yield entry

    def _start(self, elem: ET.Element) -> None:
        elem.tag = tag = local(elem.tag)
        path = self.path
        if not path and tag != ROOT:
            raise InvalidDocument(
                f"not a CommerceML document: the root is <{tag}>, expected <{ROOT}>"
            )
        if len(path) >= MAX_DEPTH:
            raise InvalidDocument(
                f"elements are nested deeper than {MAX_DEPTH} levels "
                f"(inside <{'/'.join(path[1:4])}/…>): refused"
            )
        self.stack.append(elem)
        path.append(tag)
        if len(path) == 2:
            self.ctx.sections.append(tag)
            if tag in _HEADED and (
                (elem.get(_CHANGES_ONLY) or "").strip().lower() == "true"
                or tag == "ИзмененияПакетаПредложений"
            ):
                self.ctx.changes_only = True
        if self.holders:
            self.held += 1
            if self.held > MAX_HELD_ELEMENTS:
                raise InvalidDocument(
                    f"one <{self._holder_tag()}> holds more than {MAX_HELD_ELEMENTS} "
                    "elements: refused"
                )
        role = _role(path)
        if role is None and tag == "Документ" and not self.holders:
            self.ctx.stray_documents.append("/".join(path))
        self.roles.append(role)
        if role is not None:
            self.holders += 1
            self.marks.append(self.held)
            if role == "group":
                self.groups.append([])

    def _end(self, elem: ET.Element) -> Entry | None:
        """The entry that ends here, if one does. Other elements are dropped at once; an
        entry's element only at the next event, i.e. once the consumer has moved on."""
        self._drop_pending()
        role = self.roles.pop()
        if len(self.path) == 3 and role is None and self.path[1] in _HEADED:
            self._read_header(elem)
        entry = None
        if role == "group":
            self._read_group(elem)
        elif role == "declaration":
            _read_declaration(elem, self.ctx)
            if elem.tag == "ТипЦены":
                entry = Entry("price_type", elem, self.ctx)
        elif role is not None:
            entry = Entry(role, elem, self.ctx)
        if role is not None:
            self.holders -= 1
            self.held = self.marks.pop()
        self.stack.pop()
        self.path.pop()
        if self.stack and (role is not None or not self.holders):
            # Handled, or outside anything being read: drop it so the tree never grows.
            if entry is None:
                elem.clear()
                self.stack[-1].remove(elem)
            else:
                self._pending = (self.stack[-1], elem)
        return entry

    def _drop_pending(self) -> None:
        if self._pending is not None:
            parent, elem = self._pending
            self._pending = None
            elem.clear()
            parent.remove(elem)

    def _read_header(self, elem: ET.Element) -> None:
        """A section's own ids (``Классификатор/Ид``, ``…/ИдКлассификатора``, ``Каталог/Ид``,
        ``…/ИдКаталога``): the first of each kind is the document's."""
        tag, ident = elem.tag, text(elem)
        if not ident:
            return
        section = self.path[1]
        if (
            tag == "ИдКлассификатора" or (tag == "Ид" and section == "Классификатор")
        ) and not self.ctx.classifier_id:
            self.ctx.classifier_id = ident
        elif (
            tag == "ИдКаталога" or (tag == "Ид" and section == "Каталог")
        ) and not self.ctx.catalog_ref:
            self.ctx.catalog_ref = ident

    def _holder_tag(self) -> str:
        return next(tag for tag, role in zip(self.path, self.roles, strict=False) if role)

    def _read_group(self, group: ET.Element) -> None:
        nested = self.groups.pop()
        gid = child_text(group, "Ид")
        if gid:
            self.ctx.groups[gid] = child_text(group, "Наименование")
            for child in nested:
                self.ctx.group_parents[child] = gid
        # A group without an Ид passes its children up to the enclosing group.
        if self.groups:
            self.groups[-1].extend([gid] if gid else nested)


def _read_declaration(elem: ET.Element, ctx: Context) -> None:
    """A property (and its dictionary), a price type or a warehouse into the context."""
    eid = child_text(elem, "Ид")
    if not eid:
        return
    if elem.tag in ("Свойство", "СвойствоНоменклатуры"):
        # ВариантыЗначений/Справочник (2.04+, 3.x) with ИдЗначения + Значение; 2.03's
        # ТипыЗначений/ТипЗначений/ВариантыЗначений/ВариантЗначения with Ид + Значение.
        values = {
            child_text(v, "ИдЗначения"): child_text(v, "Значение")
            for v in elem.iter("Справочник")
            if child_text(v, "ИдЗначения")
        }
        values.update(
            (child_text(v, "Ид"), child_text(v, "Значение"))
            for v in elem.iter("ВариантЗначения")
            if child_text(v, "Ид")
        )
        value_type = child_text(elem, "ТипЗначений") or child_text(
            elem, "ТипыЗначений/ТипЗначений/Тип"
        )
        known = ctx.properties.get(eid)
        if known is not None:
            # Declared before (an earlier file of the exchange, or a full classifier of the
            # catalog): a "changes only" classifier re-declares a property with the values
            # that changed; those it leaves out are still what they were.
            values = {**known.values, **values}
            value_type = value_type or known.value_type
        ctx.properties[eid] = Property(
            child_text(elem, "Наименование") or (known.name if known else ""), values, value_type
        )
    elif elem.tag == "ТипЦены":
        ctx.price_types[eid] = PriceType(
            child_text(elem, "Наименование"), child_text(elem, "Валюта")
        )
    else:
        ctx.warehouses[eid] = child_text(elem, "Наименование")
