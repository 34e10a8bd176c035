"""Health report helpers (pure)."""

from __future__ import annotations

from mmstream.ops.health import DEGRADED, DOWN, NA, OK, Check, mask_webhook, overall


def test_webhook_code_and_passwords_are_hidden():
    assert (
        mask_webhook("https://portal.bitrix24.ru/rest/12/abcSECRET/")
        == "https://portal.bitrix24.ru/rest/12/***/"
    )
    assert (
        mask_webhook("https://u:pw@portal.example/rest/1/code")
        == "https://u:***@portal.example/rest/1/***/"
    )


def test_overall_is_the_worst_status():
    def checks(*statuses):
        return [Check(str(i), s, "") for i, s in enumerate(statuses)]

    assert overall(checks(OK, NA)) == OK
    assert overall(checks(OK, DEGRADED, NA)) == DEGRADED
    assert overall(checks(DEGRADED, DOWN)) == DOWN
    assert overall([]) == OK
