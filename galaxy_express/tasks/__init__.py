"""Tasks: the crew's work items, made through the API or by the external TODO service."""
