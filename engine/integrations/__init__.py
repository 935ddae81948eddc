"""Integrations over HTTP: GoHighLevel (client, executor, local sandbox), Slack alerts, LLM providers."""
