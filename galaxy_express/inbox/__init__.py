"""Inbox: delivered packages per recipient, folders, read state, spam reports."""
