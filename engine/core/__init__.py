"""The shared vocabulary every layer may use: time, errors, reason codes, recipient identity, actions,
configuration and the environment. Imports nothing else from the engine."""
