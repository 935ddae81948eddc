"""Pure decisions: functions of (action, state, config, clock) with no I/O. Guardrails, ICP scoring, routing,
reply classification, agreement statistics, the messaging pack, unsubscribe tokens. Imports only `engine.core`."""
