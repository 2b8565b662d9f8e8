"""Notifications: what reaches people, by email or through the organisation's webhook."""
