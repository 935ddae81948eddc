"""How people and machines reach the engine: the `alpha` CLI, the webhook receiver, `alpha dev`. The console
(`console/`, `pages/`) is the other entry point. Built on the composition root, `engine.app`."""
