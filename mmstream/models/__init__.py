"""Canonical entities shared by normalizers, the sink, egress and the Avro schemas."""
