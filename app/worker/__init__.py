"""The background worker: periodic jobs that claim rows in batches, safe to run in several
processes at once (`homework worker`)."""
