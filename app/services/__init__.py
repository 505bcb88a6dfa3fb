"""The domain: services that never see HTTP types and never commit."""
