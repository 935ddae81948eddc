"""Signed checkpoints anchor the audit chain outside the database.

Someone with write access to the database can edit a row and recompute every later hash and the head, or cut the
tail and rewind the head: `alpha audit verify` then passes (the chain is consistent again). The checkpoints,
signed with a key the database never sees and kept elsewhere, no longer match: `alpha audit verify --checkpoint`
fails and names the checkpoint and where the stored chain diverges.
"""
from __future__ import annotations

import base64
import json
import logging
import signal
import stat
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import select

from engine.adapters import anchor
from engine.adapters import audit
from engine.core.errors import ConfigError
from engine.adapters.models import AuditEntry, AuditHead
from tests.conftest import LIVE, ROOT, deep_merge
from tests.fake_servers import FakeServer, Reply
from tests.helpers import alpha, alpha_env

PROD = deep_merge(LIVE, {"rollout_phase": {"current": "autonomous"}})


@pytest.fixture
def cp_file(tmp_path, monkeypatch):
    path = tmp_path / "anchors" / "checkpoints.jsonl"
    monkeypatch.setenv(anchor.DEST_ENV, str(path))
    for name in (anchor.KEY_ENV, anchor.SECONDS_ENV, anchor.ROWS_ENV):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def app(app_factory, cp_file):
    a = app_factory(production=PROD, warmup={"enabled": False})
    _send(a, "a", 3)
    return a


@pytest.fixture
def cli_env(app, config_factory, tmp_path):
    """The `alpha` CLI on the same database, data dir (key) and checkpoint file as ``app``."""
    return alpha_env(app.store.url, config_factory(), tmp_path)


_SENT = [0]


def _send(app, prefix: str, n: int) -> None:
    """``n`` new audit rows (one suppression each: written like every decision, in Store.write())."""
    for _ in range(n):
        i = _SENT[0] = _SENT[0] + 1
        assert app.suppress(f"{prefix}{i}@d{i}.io", "manual", "test")


def _head(app) -> tuple[int, str]:
    with app.store.read() as s:
        h = s.get(AuditHead, 1)
        return h.last_seq, h.last_hash


def _row_hash(app, seq: int) -> str:
    with app.store.read() as s:
        return s.get(AuditEntry, seq).row_hash


def _plain_verify(app) -> audit.VerifyResult:
    with app.store.read() as s:
        return audit.verify(s)


def _check(app, path, **kw) -> dict:
    with open(path) as f:
        return anchor.verify_checkpoints(app, f, anchor.load_public_key(), source=str(path), **kw)


def _rewrite_from(app, seq: int) -> None:
    """What an administrator with write access can do: edit row ``seq``, then recompute its hash, every later
    row's prev_hash and row_hash, and the head, so that the chain is consistent again."""
    with app.store.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET actor = 'mallory', status = 'rewritten' WHERE seq = :s"), {"s": seq})
    with app.store.read() as s:
        rows = s.exec(select(AuditEntry).where(AuditEntry.seq >= seq).order_by(AuditEntry.seq)).all()
    prev, updates = rows[0].prev_hash, []
    for e in rows:
        e.prev_hash = prev
        prev = audit.row_digest(e)
        updates.append({"s": e.seq, "p": e.prev_hash, "h": prev})
    with app.store.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET prev_hash = :p, row_hash = :h WHERE seq = :s"), updates)
        c.execute(sa.text("UPDATE audit_head SET last_hash = :h WHERE id = 1"), {"h": prev})


def _truncate_to(app, keep: int) -> None:
    """Delete every row after ``keep`` and rewind the head to it."""
    h = _row_hash(app, keep)
    with app.store.engine.begin() as c:
        c.execute(sa.text("DELETE FROM audit_log WHERE seq > :k"), {"k": keep})
        c.execute(sa.text("UPDATE audit_head SET last_seq = :k, last_hash = :h WHERE id = 1"), {"k": keep, "h": h})


def _lines(path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.strip()]


# ---------------------------------------------------------------------------------------------- writing

def test_checkpoint_signs_the_head_with_a_key_kept_outside_the_database(app, cp_file, tmp_path):
    out = anchor.checkpoint(app)
    cp = out["checkpoint"]
    seq, head = _head(app)
    assert (cp["seq"], cp["head"], cp["count"]) == (seq, head, seq) and seq >= 4
    assert out["where"] == str(cp_file) and _lines(cp_file) == [anchor.to_line(cp)]
    assert set(cp) == {"seq", "head", "at", "count", "key_id", "db", "sig"}

    key_file = tmp_path / "data" / "audit-signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pub = anchor.parse_public_key((tmp_path / "data" / "audit-signing.pub").read_bytes(), "pub")
    assert anchor.key_id(pub) == cp["key_id"]
    pub.verify(base64.b64decode(cp["sig"]), anchor.canonical(cp))  # raises when the signature is wrong

    _send(app, "b", 1)
    again = anchor.checkpoint(app)["checkpoint"]
    assert again["key_id"] == cp["key_id"] and again["seq"] > cp["seq"]  # the key is generated once
    assert len(_lines(cp_file)) == 2

    # the database fingerprint names the database, not its password
    fp = anchor.db_fingerprint
    assert fp("postgresql+psycopg://u:one@h/db") == fp("postgresql+psycopg://u:two@h/db") != fp("postgresql://u@h/x")


def test_a_broken_chain_is_never_signed(app, cp_file):
    with app.store.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET status = 'tampered' WHERE seq = 3"))
    with pytest.raises(anchor.CheckpointError, match=r"refusing to sign a broken audit chain \(at row 3\)"):
        anchor.checkpoint(app)
    assert not cp_file.exists()


# ---------------------------------------------------------------------------------------------- (a) rewritten

def test_rewritten_chain_passes_plain_verify_but_not_its_checkpoints(app, cp_file, cli_env):
    first = anchor.checkpoint(app)["checkpoint"]["seq"]
    _send(app, "b", 4)
    second = anchor.checkpoint(app)["checkpoint"]["seq"]
    _send(app, "c", 2)
    assert first + 3 < second
    _rewrite_from(app, first + 2)

    # the gap: the chain is consistent again, so the plain check passes ...
    assert _plain_verify(app).ok
    p = alpha(cli_env, "audit", "verify")
    assert p.returncode == 0 and "audit chain OK" in p.stdout, p.stderr

    # ... and the checkpoints catch it, naming the one that disagrees and narrowing where
    r = _check(app, cp_file)
    assert not r["ok"] and r["matched"] == 1
    assert [(x["line"], x["seq"]) for x in r["problems"]] == [(2, second)]
    assert "was rewritten" in r["problems"][0]["problem"]
    assert r["diverges"]["after_seq"] == first and r["diverges"]["at_or_before_seq"] == second

    p = alpha(cli_env, "audit", "verify", "--checkpoint", str(cp_file))
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"checkpoint line 2 (seq {second})" in p.stderr and "checkpoint line 1" not in p.stderr
    assert f"diverges between rows {first + 1} and {second}" in p.stderr
    assert "Traceback" not in p.stderr
    p = alpha(cli_env, "audit", "verify", "--checkpoint", str(cp_file), "--json")
    out = json.loads(p.stdout)
    assert p.returncode == 1 and out["chain_ok"] is True and out["ok"] is False
    assert out["checkpoints"]["problems"][0]["line"] == 2


def test_rewrite_before_the_only_checkpoint_names_it(app, cp_file):
    seq = anchor.checkpoint(app)["checkpoint"]["seq"]
    _rewrite_from(app, seq)  # the signed row itself
    r = _check(app, cp_file)
    assert [(x["line"], x["seq"]) for x in r["problems"]] == [(1, seq)]
    assert r["diverges"]["at_or_before_seq"] == seq and "at or before row" in r["diverges"]["text"]


# ---------------------------------------------------------------------------------------------- (b) truncated

def test_cut_tail_with_rewound_head_is_detected(app, cp_file, cli_env):
    seq = anchor.checkpoint(app)["checkpoint"]["seq"]
    _truncate_to(app, seq - 3)
    assert _plain_verify(app).ok  # consistent, just shorter

    r = _check(app, cp_file)
    assert not r["ok"] and [(x["line"], x["seq"]) for x in r["problems"]] == [(1, seq)]
    assert f"row {seq} is missing: the stored chain ends at row {seq - 3}" in r["problems"][0]["problem"]
    assert "truncated" in r["diverges"]["text"]

    p = alpha(cli_env, "audit", "verify", "--checkpoint", str(cp_file))
    assert p.returncode == 1 and f"checkpoint line 1 (seq {seq})" in p.stderr and "truncated" in p.stderr
    assert "Traceback" not in p.stderr


def test_a_row_deleted_before_a_checkpoint_fails_that_checkpoint(app, cp_file):
    seq = anchor.checkpoint(app)["checkpoint"]["seq"]
    with app.store.engine.begin() as c:
        c.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
    r = _check(app, cp_file)
    assert not r["ok"] and r["problems"][0]["seq"] == seq and "broken at row 2" in r["problems"][0]["problem"]


# ---------------------------------------------------------------------------------------------- (c) forged

def test_forged_checkpoint_lines_are_detected(app, cp_file, cli_env):
    real = anchor.checkpoint(app)["checkpoint"]
    other = Ed25519PrivateKey.generate()
    seq = real["seq"]
    earlier = {"seq": seq - 1, "head": _row_hash(app, seq - 1)}  # true values: only the signature shows it

    by_other_key = anchor.sign({**real, "key_id": anchor.key_id(other.public_key())}, other)
    other_key_claiming_ours = anchor.sign(real, other)  # key_id still names our key
    edited = {**real, **earlier}  # head and seq moved to another (real) row, signature kept
    with cp_file.open("a") as f:
        for cp in (by_other_key, other_key_claiming_ours, edited):
            f.write(anchor.to_line(cp) + "\n")
        f.write("{not json\n")

    r = _check(app, cp_file)
    assert not r["ok"] and r["matched"] == 1 and r["diverges"] is None
    got = {x["line"]: x["problem"] for x in r["problems"]}
    assert set(got) == {2, 3, 4, 5}
    assert got[2].startswith("signed by another key")
    assert "signature does not match" in got[3] and "signature does not match" in got[4]
    assert got[5].startswith("not JSON")

    p = alpha(cli_env, "audit", "verify", "--checkpoint", str(cp_file))
    assert p.returncode == 1 and f"checkpoint line 4 (seq {seq - 1})" in p.stderr
    assert "checkpoint line 1 " not in p.stderr and "Traceback" not in p.stderr


# ---------------------------------------------------------------------------------------------- (d) intact

def test_untampered_chain_with_checkpoints_over_time_passes(app, cp_file, cli_env, tmp_path):
    for prefix in ("b", "c"):
        anchor.checkpoint(app)
        app.clock.advance(minutes=10)
        _send(app, prefix, 2)
    p = alpha(cli_env, "audit", "checkpoint")
    assert p.returncode == 0 and f"written to {cp_file}" in p.stdout, p.stderr
    _send(app, "d", 1)  # rows after the newest checkpoint are fine

    r = _check(app, cp_file)
    assert r["ok"] and r["matched"] == r["checkpoints"] == 3 and not r["problems"]
    p = alpha(cli_env, "audit", "verify", "--checkpoint", str(cp_file), "--write-checkpoint")
    assert p.returncode == 0, p.stderr
    assert "checkpoints OK: 3 of 3" in p.stdout and f"head {_head(app)[1][:16]} written to" in p.stdout
    assert len(_lines(cp_file)) == 4 and _check(app, cp_file)["matched"] == 4

    # an auditor elsewhere: no signing key there, the exported public key instead
    pem = alpha(cli_env, "audit", "pubkey", check=True).stdout
    pub_file = tmp_path / "auditor.pub"
    pub_file.write_text(pem)
    elsewhere = {**cli_env, "ALPHA_DATA_DIR": str(tmp_path / "auditor-data")}
    p = alpha(elsewhere, "audit", "verify", "--checkpoint", str(cp_file))
    assert p.returncode == 2 and "pass --pubkey" in p.stderr and "Traceback" not in p.stderr
    p = alpha(elsewhere, "audit", "verify", "--checkpoint", str(cp_file), "--pubkey", str(pub_file))
    assert p.returncode == 0 and "checkpoints OK: 4 of 4" in p.stdout, p.stderr
    wrong = tmp_path / "wrong.pub"
    wrong.write_text(anchor.public_pem(Ed25519PrivateKey.generate().public_key()))
    p = alpha(elsewhere, "audit", "verify", "--checkpoint", str(cp_file), "--pubkey", str(wrong))
    assert p.returncode == 1 and "signed by another key" in p.stderr


def test_checkpoints_of_another_database_and_an_empty_file(app, cp_file, tmp_path):
    cp = anchor.checkpoint(app)["checkpoint"]
    key = anchor.load_signing_key()
    with cp_file.open("a") as f:
        f.write(anchor.to_line(anchor.sign({**cp, "db": "0" * 16, "seq": 10 ** 6}, key)) + "\n")
    r = _check(app, cp_file)
    assert r["ok"] and r["matched"] == 1 and r["other_db"] == 1
    r = _check(app, cp_file, any_db=True)  # now it is compared, and that row does not exist
    assert not r["ok"] and r["problems"][0]["line"] == 2

    only_other = tmp_path / "other.jsonl"
    only_other.write_text(_lines(cp_file)[1] + "\n")
    r = _check(app, only_other)
    assert not r["ok"] and "none of the 1 checkpoints is for this database" in r["problems"][0]["problem"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    r = _check(app, empty)
    assert not r["ok"] and "holds no checkpoints" in r["problems"][0]["problem"]


# ---------------------------------------------------------------------------------------------- (e) environment

def _rsa_pem() -> bytes:
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


BAD_ENV = [
    (anchor.DEST_ENV, "ftp://vault.internal/anchors", "unsupported scheme 'ftp'"),
    (anchor.DEST_ENV, "{dir}", "is a directory"),
    (anchor.DEST_ENV, "https:///anchors", "has no host"),
    (anchor.KEY_ENV, "{dir}/missing.key", "no such file (create one with `openssl genpkey"),
    (anchor.KEY_ENV, "{garbage}", "not an Ed25519 private key"),
    (anchor.KEY_ENV, "{rsa}", "not an Ed25519 key"),
    (anchor.KEY_ENV, "{dir}", "is a directory"),
    (anchor.SECONDS_ENV, "hourly", "not a number of seconds"),
    (anchor.ROWS_ENV, "-5", "must be 0 (off) or positive"),
]


def _bad_value(template: str, tmp_path) -> str:
    garbage, rsa_file = tmp_path / "garbage.key", tmp_path / "rsa.pem"
    garbage.write_text("this is not a key\n")
    rsa_file.write_bytes(_rsa_pem())
    return template.format(dir=tmp_path, garbage=garbage, rsa=rsa_file)


@pytest.mark.parametrize("name,value,expected", BAD_ENV, ids=[f"{n}-{e[:18]}" for n, _, e in BAD_ENV])
def test_bad_environment_values_raise_a_clear_error_naming_the_variable(app, cp_file, monkeypatch, tmp_path,
                                                                        name, value, expected):
    monkeypatch.setenv(name, _bad_value(value, tmp_path))
    with pytest.raises(ConfigError) as e:
        anchor.maybe_checkpoint(app)  # resolves every setting, as the worker does at start
    assert name in str(e.value) and expected in str(e.value)
    assert not cp_file.exists()


@pytest.mark.parametrize("name,value,expected,command", [
    (anchor.DEST_ENV, "ftp://vault.internal/anchors", "unsupported scheme 'ftp'", ("audit", "checkpoint")),
    (anchor.KEY_ENV, "{garbage}", "not an Ed25519 private key", ("audit", "verify", "--write-checkpoint")),
    (anchor.SECONDS_ENV, "hourly", "not a number of seconds", ("worker",)),
])
def test_bad_environment_values_stop_the_cli_with_one_line_and_no_traceback(cli_env, tmp_path, name, value,
                                                                            expected, command):
    p = alpha({**cli_env, name: _bad_value(value, tmp_path)}, *command, timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    assert name in p.stderr and expected in p.stderr and "Traceback" not in p.stderr
    assert "worker started" not in p.stdout


# ---------------------------------------------------------------------------------------------- (f) HTTP

def test_http_destination_receives_the_checkpoint(app, monkeypatch, tmp_path, cli_env):
    with FakeServer() as srv:
        url = srv.base_url + "/anchors?token=s3cret-token"
        monkeypatch.setenv(anchor.DEST_ENV, url)
        out = anchor.checkpoint(app)
        assert srv.count == 1 and out["where"] == srv.base_url + "/anchors" and "s3cret" not in out["where"]
        req = srv.requests[0]
        assert req.method == "POST" and req.path == "/anchors?token=s3cret-token"
        assert req.headers["content-type"] == "application/json" and req.json == out["checkpoint"]
        received = tmp_path / "received.jsonl"
        received.write_bytes(req.body + b"\n")
        assert _check(app, received)["ok"]

        srv.reset()
        srv.queue(Reply(503, "busy"), Reply(429, "slow down"))
        anchor.checkpoint(app, backoff=0.01)
        assert [r.json["seq"] for r in srv.requests] == [out["checkpoint"]["seq"]] * 3  # retried, delivered

        srv.reset()
        srv.always(Reply(500, "down"))
        with pytest.raises(anchor.CheckpointError) as e:
            anchor.checkpoint(app, attempts=3, backoff=0.01)
        msg = str(e.value)
        assert srv.count == 3 and f"not delivered to {srv.base_url}/anchors" in msg and "after 3 attempt" in msg
        assert anchor.DEST_ENV in msg and "s3cret" not in msg

        srv.reset()
        srv.always(Reply(403, "forbidden"))
        with pytest.raises(anchor.CheckpointError, match="refused by .* HTTP 403"):
            anchor.checkpoint(app, backoff=0.01)
        assert srv.count == 1  # a refusal is not retried

        srv.reset()
        srv.always(Reply(500, "down"))
        p = alpha({**cli_env, anchor.DEST_ENV: url}, "audit", "checkpoint")
        assert p.returncode == 1 and "not delivered to" in p.stderr and anchor.DEST_ENV in p.stderr
        assert "Traceback" not in p.stderr and "s3cret" not in p.stderr and srv.count == 4


# ---------------------------------------------------------------------------------------------- periodic

def test_maybe_checkpoint_writes_when_due_and_reports_failures(app, cp_file, monkeypatch, caplog):
    t = [1000.0]
    alerts: list[dict] = []
    monkeypatch.setattr(app, "alert_dict", alerts.append)

    def due(**kw):
        return anchor.maybe_checkpoint(app, every_seconds=60, every_rows=5, clock=lambda: t[0], **kw)

    first = due()
    assert first["ok"] and first["checkpoint"]["seq"] == _head(app)[0]  # the first call anchors at once
    assert due() is None  # not due
    _send(app, "b", 1)
    assert due() is None  # fewer than 5 new rows, under 60 s
    t[0] += 61
    assert due()["checkpoint"]["seq"] == _head(app)[0]  # time
    t[0] += 600
    assert due() is None  # the head has not moved: nothing to anchor
    _send(app, "c", 5)
    assert due()["checkpoint"]["seq"] == _head(app)[0]  # rows, no time passed
    assert len(_lines(cp_file)) == 3 and _check(app, cp_file)["ok"]
    assert anchor.maybe_checkpoint(app, every_seconds=0, every_rows=0) is None  # both triggers off

    # a head rewound under a running process is reported at once, not signed
    seq = _head(app)[0]
    _truncate_to(app, seq - 2)
    with caplog.at_level(logging.ERROR, logger="alpha.anchor"):
        bad = due()
    assert bad["ok"] is False and f"the head went back from row {seq} to row {seq - 2}" in bad["error"]
    assert alerts and alerts[-1]["kind"] == "audit_checkpoint_failed" and "went back" in alerts[-1]["text"]
    assert "audit checkpoint failed" in caplog.text
    assert len(_lines(cp_file)) == 3
    assert due() is None  # backs off instead of alerting on every pass
    t[0] += 61
    assert due()["ok"] is False and len(alerts) == 2


def test_maybe_checkpoint_survives_an_unreachable_destination(app, monkeypatch):
    alerts: list[dict] = []
    monkeypatch.setattr(app, "alert_dict", alerts.append)
    with FakeServer() as srv:
        srv.always(Reply(502, "bad gateway"))
        monkeypatch.setenv(anchor.DEST_ENV, srv.base_url + "/anchors")
        out = anchor.maybe_checkpoint(app, every_seconds=60, every_rows=0, attempts=2, backoff=0.01)
        assert out["ok"] is False and "not delivered" in out["error"] and srv.count == 2
        assert alerts[0]["kind"] == "audit_checkpoint_failed" and srv.base_url in alerts[0]["fields"]["destination"]


def test_the_worker_writes_checkpoints(cli_env, cp_file, app):
    env = {**cli_env, anchor.SECONDS_ENV: "1"}
    p = subprocess.Popen([sys.executable, "-m", "engine.entrypoints.cli", "worker", "--interval", "0.2"], env=env,
                         cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (cp_file.exists() and _lines(cp_file)):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "the worker wrote no checkpoint"
            time.sleep(0.1)
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and "worker stopped" in out and "Traceback" not in err, err
    r = _check(app, cp_file)
    assert r["ok"] and r["newest"]["seq"] == _head(app)[0]
