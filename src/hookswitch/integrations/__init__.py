"""Integrations: third-party applications that a user connects by consent (the activation
lifecycle: portal consent, tokens delivered to the integrator, rotating refresh tokens,
deactivation notices)."""
