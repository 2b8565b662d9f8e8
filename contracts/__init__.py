"""Alongside's contracts: the single source of truth for subjects and payloads.

A subscriber in another service needs only this package: ``subjects`` builds
every subject, ``envelope`` is the CloudEvents-style wrapper; ``intake``, ``rules``,
``matching``, ``scheduling``, ``views`` and ``console`` hold each service's commands and
events, ``records`` what the buckets hold, ``replies`` the command replies and dead
letters; ``catalogue`` indexes them all and exports JSON Schema and AsyncAPI.
"""
