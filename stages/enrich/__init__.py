"""Bitrix24 enrichment: events (ids only) in, full entities out; the cursor poller."""
