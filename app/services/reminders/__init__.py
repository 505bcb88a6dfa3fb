"""Reminders: planned per occurrence in the client's own time, fired by the worker."""
