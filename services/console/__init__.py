"""The coordinators' console and its HTTP API."""
