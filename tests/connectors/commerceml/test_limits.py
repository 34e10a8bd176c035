"""What a hostile or broken upload cannot do to the reader: grow memory with the file,
nest without end, declare entities, or unpack a small zip into a big one."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import pytest

from connectors.commerceml import files
from connectors.commerceml.document import check
from connectors.commerceml.errors import (
    ArchiveTooLarge,
    BrokenArchive,
    DuplicateMember,
    IncompleteDocument,
    InvalidDocument,
)
from connectors.commerceml.parser import MAX_DEPTH, MAX_HELD_ELEMENTS, Context, entries
from tests.connectors.commerceml import samples

# ~1 MiB, 100,000 elements the reader knows nothing of (numbered: they do not pack like a bomb).
JUNK = b"".join(b"<x>%d</x>" % i for i in range(100_000))
HEAD = "<?xml version='1.0' encoding='UTF-8'?><КоммерческаяИнформация ВерсияСхемы='2.05'>"
TAIL = "</КоммерческаяИнформация>"


def peak_mib(read) -> float:
    """Peak memory Python allocated (tracemalloc) while ``read`` ran, in MiB."""
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1] / (1 << 20)
    finally:
        tracemalloc.stop()


def _offers_with(junk: bytes, before: str) -> bytes:
    data = samples.OFFERS.read_bytes()
    at = data.index(before.encode())
    return data[:at] + junk + data[at:]


@pytest.mark.parametrize(
    "where,before",
    [
        ("inside ПакетПредложений", "<Предложения>"),  # depth 3, beside the offers
        ("inside Классификатор", "</Классификатор>"),  # the classifier used to be read whole
        ("a deep unknown branch", "<Предложения>"),
    ],
)
def test_unknown_elements_do_not_grow_memory(where, before):
    """Unknown elements: the old reader kept every one of them until its section ended
    (~10 MiB traced here; 8 MiB of them made 84 MiB traced, ~140 MB RSS); now each is
    dropped as it ends."""
    junk = b"<Junk>" + (b"<a><b>" + JUNK + b"</b></a>" if "deep" in where else JUNK) + b"</Junk>"
    doc = _offers_with(junk, before)
    summary = None

    def read():
        nonlocal summary
        summary = check(io.BytesIO(doc))

    peak = peak_mib(read)
    assert summary.records == {"price": 84, "price_type": 1}  # the real content is still read
    assert peak < 2.5, f"{where}: {peak:.1f} MiB at peak for an {len(doc) >> 20} MiB document"


def test_a_large_catalog_is_read_in_bounded_memory():
    """Entries are dropped once yielded: memory does not follow the number of products."""
    product = "<Товар><Ид>{}</Ид><Наименование>Товар {}</Наименование></Товар>"
    body = "".join(product.format(i, i) for i in range(30_000))
    doc = f"{HEAD}<Каталог><Товары>{body}</Товары></Каталог>{TAIL}".encode()
    count = 0

    def read():
        nonlocal count
        count = sum(1 for _ in entries(io.BytesIO(doc)))

    assert peak_mib(read) < 3 and count == 30_000


def _nested_groups(depth: int) -> bytes:
    opening = "".join(
        f"<Группы><Группа><Ид>g{i}</Ид><Наименование>G{i}</Наименование>" for i in range(depth)
    )
    closing = "</Группа></Группы>" * depth
    return f"{HEAD}<Классификатор>{opening}{closing}</Классификатор>{TAIL}".encode()


def test_groups_nested_thousands_deep_are_refused():
    """Used to recurse per level into a RecursionError (a 500)."""
    with pytest.raises(InvalidDocument, match=f"nested deeper than {MAX_DEPTH}"):
        check(io.BytesIO(_nested_groups(5000)))


def test_nested_groups_within_the_bound_keep_their_parents():
    ctx = Context()
    list(entries(io.BytesIO(_nested_groups(40)), ctx))
    assert len(ctx.groups) == 40 and ctx.groups["g39"] == "G39"
    assert ctx.group_parents == {f"g{i + 1}": f"g{i}" for i in range(39)}


def test_group_parents_do_not_depend_on_the_order_of_children():
    """The nested Группы may come before the parent's Ид; a group without Ид passes its
    children to the enclosing group (as before)."""
    doc = (
        f"{HEAD}<Классификатор><Группы>"
        "<Группа><Группы><Группа><Ид>child</Ид></Группа></Группы><Ид>top</Ид></Группа>"
        "<Группа><Ид>a</Ид><Группы><Группа><Группы><Группа><Ид>b</Ид></Группа></Группы>"
        "</Группа></Группы></Группа>"
        f"</Группы></Классификатор>{TAIL}"
    ).encode()
    ctx = Context()
    list(entries(io.BytesIO(doc), ctx))
    assert ctx.group_parents == {"child": "top", "b": "a"}


def test_an_entry_holding_too_many_elements_is_refused():
    values = "<v/>" * (MAX_HELD_ELEMENTS + 1)
    doc = f"{HEAD}<Каталог><Товары><Товар><Ид>1</Ид>{values}</Товар></Товары></Каталог>{TAIL}"
    with pytest.raises(InvalidDocument, match="holds more than"):
        check(io.BytesIO(doc.encode()))


@pytest.mark.parametrize(
    "doctype",
    [
        # A modest internal entity: under expat's amplification limit, so it used to be expanded.
        '<!DOCTYPE КоммерческаяИнформация [<!ENTITY e "{}">]>'.format("x" * 1000),
        # Billion laughs.
        '<!DOCTYPE КоммерческаяИнформация [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;">]>',
        # An external entity.
        '<!DOCTYPE КоммерческаяИнформация [<!ENTITY e SYSTEM "file:///etc/passwd">]>',
        # A DOCTYPE with no internal subset at all.
        '<!DOCTYPE КоммерческаяИнформация SYSTEM "http://example.invalid/cml.dtd">',
    ],
)
def test_a_doctype_is_refused_before_anything_is_read(doctype):
    uses = "&e;" * 50 if "ENTITY e" in doctype else "&d;" if "ENTITY d" in doctype else ""
    doc = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        + doctype
        + f"<КоммерческаяИнформация><Документ><Ид>1</Ид><Комментарий>{uses}</Комментарий>"
        + f"</Документ>{TAIL}"
    ).encode()
    with pytest.raises(InvalidDocument, match="DOCTYPE") as caught:
        list(entries(io.BytesIO(doc)))
    assert not isinstance(caught.value, IncompleteDocument)


def test_a_doctype_in_windows_1251_is_refused_too():
    doc = (
        "<?xml version='1.0' encoding='windows-1251'?><!DOCTYPE К [<!ENTITY e 'е'>]>"
        "<КоммерческаяИнформация>&e;</КоммерческаяИнформация>"
    ).encode("cp1251")
    with pytest.raises(InvalidDocument, match="DOCTYPE"):
        list(entries(io.BytesIO(doc)))


# ------------------------------------------------------------------ archives


def _zip(members: list[tuple[str, bytes]]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    buf.seek(0)
    return buf


def test_the_reported_bomb_duplicate_members():
    """~8 KB: one 4 MiB XML member and 39 more of the same name. The old code unpacked all
    40 into memory at once (168 MB); now the archive is refused before any is unpacked."""
    xml = (
        HEAD
        + "<Документ><Ид>1</Ид><Комментарий>"
        + "a" * (4 << 20)
        + "</Комментарий></Документ>"
        + TAIL
    ).encode()
    with pytest.warns(UserWarning, match="Duplicate name"):
        archive = _zip([("orders.xml", xml)] * 40)
    assert len(archive.getvalue()) < 400_000
    with pytest.raises(DuplicateMember, match="orders.xml"):
        files.xml_members(archive)


def test_a_member_packed_too_tightly_is_a_bomb():
    archive = _zip([("import.xml", b"<a>" + b" " * (8 << 20) + b"</a>")])
    with pytest.raises(ArchiveTooLarge, match="zip bomb"):
        files.xml_members(archive, files.ZipLimits(max_ratio=200))


def test_caps_on_entries_and_unpacked_bytes():
    archive = _zip([(f"import_files/{i}.jpg", b"\xff\xd8" + bytes([i])) for i in range(6)])
    with pytest.raises(ArchiveTooLarge, match="6 entries, more than 5"):
        files.xml_members(archive, files.ZipLimits(max_members=5))
    assert files.declared_entries(archive) == 6
    archive = _zip([("a.xml", b"<a/>" * 1000), ("b.xml", b"<b/>" * 1000)])
    with pytest.raises(ArchiveTooLarge, match="unpacks to 8000 bytes, more than 5000"):
        files.extract(archive, "a.xml", io.BytesIO(), files.ZipLimits(max_unpacked_bytes=5000))


def test_members_are_read_as_streams():
    """A valid archive's member is checked straight from the archive: memory stays far
    below the member's size."""
    xml = _offers_with(b"<Junk>" + JUNK * 6 + b"</Junk>", "<Предложения>")
    archive = _zip([("offers.xml", xml)])

    def read():
        with files.open_archive(archive, files.ZipLimits()) as zf:
            (info,) = files.xml_infos(zf)
            with files.member(zf, info) as stream:
                assert check(stream).records == {"price": 84, "price_type": 1}

    assert len(xml) > (7 << 20) and peak_mib(read) < 3


def test_a_truncated_archive_is_broken():
    data = samples.zipped({"orders.xml": samples.ORDERS.read_bytes()})
    with pytest.raises(BrokenArchive):
        files.xml_members(io.BytesIO(data[: len(data) - 30]))


# ------------------------------------------------------------------ when a file is complete


def test_looks_complete():
    orders = samples.ORDERS.read_bytes()
    half = len(orders) // 2
    assert files.looks_complete(orders[:4096], orders[-4096:])
    assert not files.looks_complete(orders[:4096], orders[half - 4096 : half])
    cp1251 = samples.as_windows_1251(orders)
    assert files.looks_complete(cp1251[:100], cp1251[-100:] + b"\r\n")
    namespaced = f"<?xml version='1.0'?><cml:{TAIL[2:-1]} xmlns:cml='urn:1C.ru:commerceml_2'>"
    assert files.looks_complete(namespaced.encode(), f"</cml:{TAIL[2:]}".encode())
    # Anything that is neither XML nor zip is parsed at once (and refused there).
    assert files.looks_complete(b"\xff\xfe<\x00", b"")
    assert files.looks_complete(b"garbage", b"garbage")
    archive = samples.zipped({"orders.xml": orders})
    assert files.looks_complete(archive[:4096], archive[-4096:])
    assert not files.looks_complete(archive[:4096], archive[:-100][-4096:])
