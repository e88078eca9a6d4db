"""Task webhooks: events from the external TODO service, signed, deduplicated, audited."""
