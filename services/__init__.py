"""Alongside's services. Each has the same modules: app (subscribers), handlers,
domain (decisions, no I/O), adapters (KV and publishing) and bootstrap (wiring)."""
