"""Schedules: recurrence rules in local time, the occurrences they make, and the worker's
occurrence jobs (extend, open, miss, finish)."""
