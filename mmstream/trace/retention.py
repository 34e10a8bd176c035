"""Retention statements (issue 14 item 6) run by the bridge's purge job
(connectors/ingress/purge.py): each deletes at most ``:rows`` expired rows, skipping rows
another replica holds, so every statement is a short transaction.

- ``integration_log``: rows older than ``retention.integration_log_days``;
- ``outbox``: PUBLISHED rows whose publication is older than ``retention.outbox_days``
  (an unpublished row is never purged: the relay still owes it to Kafka);
- ``ops_audit``: operator actions older than ``retention.ops_audit_days``.
"""

from __future__ import annotations

from sqlalchemy import text

PURGE_INTEGRATION_LOG = text("""
    DELETE FROM integration_log WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM integration_log WHERE at < now() - make_interval(days => :keep_days)
         LIMIT :rows FOR UPDATE SKIP LOCKED))""")

PURGE_OUTBOX = text("""
    DELETE FROM outbox WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM outbox
         WHERE published_at IS NOT NULL AND published_at < now() - make_interval(days => :keep_days)
         LIMIT :rows FOR UPDATE SKIP LOCKED))""")

PURGE_OPS_AUDIT = text("""
    DELETE FROM ops_audit WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM ops_audit WHERE at < now() - make_interval(days => :keep_days)
         LIMIT :rows FOR UPDATE SKIP LOCKED))""")
