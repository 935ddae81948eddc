"""Read-only views for pages, reports and metrics: usage against the limits, the audit trail for people, lead
lookups, deliverability, health. Never write. Imports `core`, `rules` and `adapters`."""
