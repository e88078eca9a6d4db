"""Users: the crew members tasks are assigned to."""
