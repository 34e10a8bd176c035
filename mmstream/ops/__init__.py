"""Operator tooling behind `mmctl groups` and `mmctl health`: I/O here, printing in the CLI."""
