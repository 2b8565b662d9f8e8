"""Plumbing every service shares: settings, logging, embedded server, broker, topology."""
