"""Scheduling: an active match in; the first meeting, then sessions within the boundaries."""
