"""Tracing of every change (issue 14 item 5): the request id and a W3C traceparent on every
outbound call (:mod:`.context`, :mod:`.transport`), the integration log of those calls in
PostgreSQL (:mod:`.journal`, masked by :mod:`.masking`), and the timeline of one entity
(:mod:`.timeline`) that ``mmctl trace`` and ``GET /v1/admin/trace/{id}`` show."""
