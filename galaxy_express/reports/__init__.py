"""Task reports: per-user activity in a window, on demand and written periodically."""
