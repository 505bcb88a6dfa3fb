"""Webhooks: endpoints the vendor manages, fan-out of events to them, dispatch with retries,
thin payloads and Standard Webhooks signatures."""
