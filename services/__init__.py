"""Alongside's services: intake, rules, matching, scheduling, and the console.

Each reads as a story: ``app`` (its subscriptions, or the console's HTTP routes),
``bootstrap`` (wiring), ``handlers`` (thin: contract in, decision, events out) and plain
modules holding the decisions, with no I/O, testable without a broker. Every change to a
record goes through ``runtime.unit``; no service imports another (``contracts`` is what
they share). ``docs/architecture.md`` is the map."""
