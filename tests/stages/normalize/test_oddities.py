"""1С references (oddities.ref): GUID texts are parsed once per process, which must not
change what a reference reads as, nor let a bad value through on its second appearance."""

from __future__ import annotations

from uuid import UUID

import pytest

from stages.normalize.oddities import EMPTY_REF, Unnormalizable, ref

GUID = "2528e58f-e921-11ea-8591-000c29b45b09"


@pytest.mark.parametrize("value", [GUID, GUID.upper(), "{" + GUID + "}", "urn:uuid:" + GUID])
def test_a_guid_reads_the_same_every_time(value):
    assert ref(value) == ref(value) == UUID(GUID)


@pytest.mark.parametrize("value", [None, "", [], {}, str(EMPTY_REF)])
def test_no_reference_reads_as_none_every_time(value):
    assert ref(value) is None and ref(value) is None


@pytest.mark.parametrize("value", ["not-a-guid", 42, GUID[:-1], {"a": 1}])
def test_a_bad_reference_is_refused_every_time_under_its_field(value):
    for _ in range(2):
        with pytest.raises(Unnormalizable, match="^Склад_Key: not a GUID"):
            ref(value, "Склад_Key")


def test_a_guid_that_is_not_a_str_is_read_through_its_text():
    class Text(str):
        pass

    assert ref(Text(GUID)) == UUID(GUID)
