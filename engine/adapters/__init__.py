"""The edges: the database (tables, migrations, the audit chain, breakers), the executors that make things leave,
GoHighLevel, Slack, LLM providers, the users file, lead CSVs, key files and logs. Imports `core` and `rules`."""
