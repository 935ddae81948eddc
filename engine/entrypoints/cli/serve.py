"""The long-running processes: the webhook receiver, the GHL sandbox, the local stack (`up`, `dev`), the
console and the worker."""
from __future__ import annotations

import os

import typer

from engine.core.errors import AlphaError
from engine.entrypoints.cli import common

commands = typer.Typer()  # this module's top-level commands: the root registers them, in its order
webhooks_cli = typer.Typer(no_args_is_help=True, help="The webhook receiver and one-click unsubscribe endpoint.")
sandbox_cli = typer.Typer(no_args_is_help=True, help="Local sandboxes of external services.")


@webhooks_cli.command("serve")
def webhooks_serve(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8787, "--port")):
    """Serve POST /webhooks/ghl, POST /webhooks/rb2b and /unsubscribe/{token} (RFC 8058 one-click), GET /healthz
    and GET /metrics (Prometheus)."""
    from engine.adapters.logs import configure_logging
    from engine.entrypoints.webhooks import serve

    configure_logging()  # ALPHA_LOG_FORMAT=json|text, ALPHA_LOG_LEVEL
    # fail early, with a clear message: bad env/config, database not ready
    common.open_app(serving="the webhook receiver")
    print(f"webhook receiver on http://{host}:{port} (POST /webhooks/ghl, /webhooks/rb2b; /unsubscribe/TOKEN)")
    serve(host, port)


@sandbox_cli.command("ghl")
def sandbox_ghl(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8765, "--port")):
    """Serve a local GHL sandbox (the endpoints the client uses; records what it "sends"; fault injection)."""
    from engine.adapters.ghl_sandbox import main as sandbox_main

    sandbox_main(host, port)


@commands.command()
def up(host: str = typer.Option("127.0.0.1", "--host"),
       ghl_port: int = typer.Option(8765, "--ghl-port", help="Port of the local GHL sandbox."),
       webhook_port: int = typer.Option(8787, "--webhook-port", help="Port of the webhook receiver.")):
    """Run the local stack until Ctrl-C: the GHL sandbox (when no GHL credentials are set) and the webhook
    receiver, wired to the engine."""
    import socket

    from engine.adapters.ghl_sandbox import DEFAULT_LOCATION, start_sandbox
    from engine.entrypoints.webhooks import receiver_url, serve

    def free(port: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex((host, port)) != 0

    common.open_app(serving="`alpha up`")  # bad config or an uninitialised database: say so before starting anything
    if not (os.environ.get("GHL_API_KEY") and os.environ.get("GHL_LOCATION_ID")):
        if not free(ghl_port):
            raise AlphaError(f"port {ghl_port} is in use: stop what runs there or pass --ghl-port")
        server, url = start_sandbox(host, ghl_port)
        os.environ.update({"GHL_API_KEY": "sandbox-token", "GHL_LOCATION_ID": DEFAULT_LOCATION, "GHL_BASE_URL": url})
        print(f"GHL SANDBOX on {url}: no GHL credentials are set, so every send goes to this local sandbox "
              f"(see {url}/_sandbox/messages). Nothing reaches a real inbox.")
    else:
        print(f"GHL: {os.environ.get('GHL_BASE_URL') or 'https://services.leadconnectorhq.com'} "
              f"(location {os.environ['GHL_LOCATION_ID']})")
    if not free(webhook_port):
        raise AlphaError(f"port {webhook_port} is in use: stop what runs there or pass --webhook-port")
    # every part started here is told the receiver started here: a value from the environment or .env (another
    # port, an earlier run) is replaced, never kept
    hooks = receiver_url(host, webhook_port)
    stale = (os.environ.get("ALPHA_WEBHOOK_URL") or "").strip().rstrip("/")
    if stale and stale != hooks:
        print(f"ALPHA_WEBHOOK_URL {stale} (from the environment or .env) is not the receiver started here: this "
              f"stack uses {hooks}")
    os.environ["ALPHA_WEBHOOK_URL"] = hooks
    print(f"webhook receiver on {hooks}; `alpha verify --no-send` checks the stack. Ctrl-C stops.")
    serve(host, webhook_port)


@commands.command("dev")
def dev(console_port: int = typer.Option(8501, "--console-port", help="Port of the console (Streamlit)."),
        ghl_port: int = typer.Option(8765, "--ghl-port", help="Port of the local GHL sandbox."),
        webhook_port: int = typer.Option(8787, "--webhook-port", help="Port of the webhook receiver."),
        assisted: bool = typer.Option(False, "--assisted",
                                      help="Demo step into the assisted phase (a demo configuration that sends to "
                                           "the local sandbox only), so approvals have work."),
        ready_timeout: float = typer.Option(90.0, "--ready-timeout", help="Seconds each part may take to answer.")):
    """What `make run` runs: init, the demo data (with a blind-review set), then the console, the local GHL
    sandbox, the webhook receiver and a worker, all on 127.0.0.1, supervised: the demo password is printed once
    everything answers; when any part stops, everything stops (exit 1); Ctrl-C stops everything."""
    from engine.entrypoints.devstack import run_dev

    raise typer.Exit(run_dev(console_port=console_port, ghl_port=ghl_port, webhook_port=webhook_port,
                             assisted=assisted, ready_timeout=ready_timeout))


@commands.command("console")
def console_cmd(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8501, "--port")):
    """Serve the operator console (Streamlit, headless) until Ctrl-C; /_stcore/health answers once it is up. Needs
    the console extra: pip install 'alpha-swarm[console]'."""
    from engine.entrypoints.console_server import run_console

    run_console(host, port)


@commands.command()
def worker(interval: float = typer.Option(5.0, "--interval", help="Seconds to wait when nothing is due.")):
    """Run the execution queue continuously (Ctrl-C or SIGTERM stops it after the current item)."""
    import signal

    from engine.adapters.logs import configure_logging

    configure_logging()  # ALPHA_LOG_FORMAT=json|text, ALPHA_LOG_LEVEL
    app = common.open_app(serving="the worker")
    stopping = {"now": False}

    def stop(*_):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, stop)
    from engine.adapters.anchor import PeriodicCheckpoints

    checkpoints = PeriodicCheckpoints(app).start()  # signed audit checkpoints (ALPHA_AUDIT_CHECKPOINT_*)
    from engine.queries.health import WORKER, Beater, mark_stopped

    # the worker's heartbeat, from its own loop (run_forever calls stop() every iteration), about once per interval;
    # it says where THIS process sends (LIVE GHL, the local GHL sandbox at a URL, the sandbox executor): the console
    # and `alpha status` show that, not what their own environment would send through
    heartbeat = Beater(app.store, WORKER, every=max(1.0, interval),
                       info={"interval": interval, "pid": os.getpid(), "sending": app.executor_mode()})
    print(f"worker started (database {app.store.display_url}); Ctrl-C stops it")
    try:
        app.approvals.run_forever(interval, stop=lambda: (heartbeat(), stopping["now"])[1])
    except KeyboardInterrupt:
        pass
    try:
        mark_stopped(app.store, WORKER)
    except Exception:  # noqa: BLE001 - stopping anyway
        pass
    checkpoints.stop()
    app.alerts.flush()
    print("worker stopped")
