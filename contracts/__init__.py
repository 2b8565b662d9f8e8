"""Alongside's contracts: the single source of truth for subjects and payloads.

A subscriber in another service needs only this package: ``subjects`` builds
every subject, ``envelope`` is the CloudEvents-style wrapper, ``intake`` holds
the intake commands and events, ``replies`` the command replies and dead
letters, ``catalogue`` indexes them all and exports JSON Schema and AsyncAPI.
"""
