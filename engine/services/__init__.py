"""Use cases, one transaction each: the gateway, approvals, the pipeline, the control plane, inbound events,
blind review, drafting, sessions, readiness. Imports `core`, `rules`, `adapters` and `queries`."""
