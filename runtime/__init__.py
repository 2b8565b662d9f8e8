"""Plumbing every service shares, below the services and above the contracts: settings,
the clock, logging, the embedded server, broker, topology, receiving messages, records
with an outbox."""
