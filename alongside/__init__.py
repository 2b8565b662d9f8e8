"""Alongside: shared runtime, CLI and demo. Services live in ``services/``."""
