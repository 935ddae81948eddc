"""Signed checkpoints of the audit chain's head, kept outside the database.

The hash chain (engine/adapters/audit.py) shows an edited, deleted or reordered row, but someone who can write to the
database can also recompute every hash after an edit, or cut the tail and rewind ``audit_head``: the chain is
then consistent again. A *checkpoint* anchors it from outside: the head (``seq`` and that row's ``row_hash``),
signed with an Ed25519 key the database never sees, and appended to a file or POSTed to a collector the
database's administrators cannot rewrite. ``verify_checkpoints`` compares the stored chain with every
checkpoint: a rewritten or truncated chain no longer has the signed hash at the signed row.

A checkpoint is one JSON object::

    {"seq": 1234, "head": "<row_hash of row 1234>", "at": "2026-...Z", "count": 1234,
     "key_id": "<sha256 of the raw public key, first 16 hex>", "db": "<sha256 of the database URL without
     its password, first 16 hex>", "sig": "<base64 Ed25519 signature over canonical(checkpoint without sig)>"}

``canonical`` is JSON with sorted keys and no spaces; the signature covers every field but ``sig``.

Environment (validated; a bad value is a ConfigError naming the variable):

- ALPHA_AUDIT_SIGNING_KEY_FILE: the private key (PEM, or base64 of the raw 32 bytes). Default
  ``$ALPHA_DATA_DIR/audit-signing.key``, generated once (mode 0600) with the public key beside it (``.pub``).
  A file named explicitly must exist: nothing is generated in its place.
- ALPHA_AUDIT_CHECKPOINTS: a file (one JSON line appended per checkpoint, fsync'd) or an http(s) URL (the JSON
  is POSTed; retried on connection errors, 408, 429 and 5xx). Default ``$ALPHA_DATA_DIR/audit-checkpoints.jsonl``.
- ALPHA_AUDIT_CHECKPOINT_SECONDS, ALPHA_AUDIT_CHECKPOINT_ROWS: how often ``maybe_checkpoint`` writes one
  (defaults 600 s and 1000 rows, whichever comes first; 0 turns that trigger off).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import httpx
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import col, func, select

from engine.adapters.ports import Alerting
from engine.adapters import audit
from engine.core.clock import iso
from engine.core.errors import AlphaError, ConfigError
from engine.adapters.models import GENESIS_HASH, AuditEntry, AuditHead

log = logging.getLogger("alpha.anchor")

KEY_ENV = "ALPHA_AUDIT_SIGNING_KEY_FILE"
DEST_ENV = "ALPHA_AUDIT_CHECKPOINTS"
SECONDS_ENV = "ALPHA_AUDIT_CHECKPOINT_SECONDS"
ROWS_ENV = "ALPHA_AUDIT_CHECKPOINT_ROWS"
DEFAULT_EVERY_SECONDS = 600.0
DEFAULT_EVERY_ROWS = 1000
FIELDS = ("seq", "head", "at", "count", "key_id", "db", "sig")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(AlphaError):
    """A checkpoint could not be made or delivered (a broken chain, an unreachable destination)."""

    exit_code = 1


def _data_dir() -> Path:
    from engine.core.envfile import data_dir

    return data_dir()


# ---------------------------------------------------------------------------------------------- keys

def key_path() -> tuple[Path, bool]:
    """The private key's path and whether ALPHA_AUDIT_SIGNING_KEY_FILE named it."""
    v = os.environ.get(KEY_ENV, "").strip()
    if v:
        return Path(v).expanduser(), True
    return _data_dir() / "audit-signing.key", False


def pub_path(path: Path) -> Path:
    """Where the public half is written beside the private key."""
    return path.with_name(path.name + ".pub") if path.suffix == ".pub" else path.with_suffix(".pub")


def _where(path: Path, explicit: bool) -> str:
    return f"{KEY_ENV}={path}" if explicit else f"the audit signing key {path} (default; {KEY_ENV} names another)"


def _b64(text: bytes) -> bytes | None:
    t = b"".join(text.split())
    for decode in (lambda x: base64.b64decode(x, validate=True),
                   lambda x: base64.urlsafe_b64decode(x + b"=" * (-len(x) % 4))):
        try:
            return decode(t)
        except (binascii.Error, ValueError):
            continue
    return None


def parse_private_key(data: bytes, where: str) -> Ed25519PrivateKey:
    text = data.strip()
    if not text:
        raise ConfigError([f"{where}: the file is empty"])
    if b"-----BEGIN" in text:
        try:
            key = serialization.load_pem_private_key(text, password=None)
        except TypeError:
            raise ConfigError([f"{where}: the PEM key is encrypted; an unencrypted key is needed "
                               "(keep it in a file only this user can read)"]) from None
        except (ValueError, UnsupportedAlgorithm):
            raise ConfigError([f"{where}: not a readable PEM private key"]) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError([f"{where}: not an Ed25519 key (create one with "
                               "`openssl genpkey -algorithm ed25519 -out FILE`)"])
        return key
    raw = _b64(text)
    if raw is None or len(raw) != 32:
        raise ConfigError([f"{where}: not an Ed25519 private key (expected PEM, or base64 of the raw 32 bytes)"])
    return Ed25519PrivateKey.from_private_bytes(raw)


def parse_public_key(data: bytes, where: str) -> Ed25519PublicKey:
    """A public key from PEM, OpenSSH (ssh-ed25519 ...), base64 of the raw 32 bytes, or a private key's PEM."""
    text = data.strip()
    key: object = None  # whatever the text holds; only an Ed25519 public key passes the check below
    try:
        if b"-----BEGIN" in text and b"PRIVATE KEY" in text:
            key = parse_private_key(text, where).public_key()
        elif b"-----BEGIN" in text:
            key = serialization.load_pem_public_key(text)
        elif text.startswith(b"ssh-ed25519 "):
            key = serialization.load_ssh_public_key(text)
        else:
            raw = _b64(text)
            if raw is not None and len(raw) == 32:
                key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError([f"{where}: not an Ed25519 public key (expected PEM, ssh-ed25519, or base64 of the raw "
                           "32 bytes)"])
    return key


def _read(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise ConfigError([f"{where}: is a directory, not a key file"]) from None
    except OSError as e:
        raise ConfigError([f"{where}: cannot read it: {e.strerror or e}"]) from None


def _write_new(path: Path, data: bytes, mode: int) -> bool:
    """Write ``data`` to ``path`` only if it does not exist, never leaving a partial file there. False when
    another process got there first."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive create, as engine/adapters/keyfile.py does
            try:
                fd2 = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            except FileExistsError:
                return False
            with os.fdopen(fd2, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(path.parent)
        return True
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def public_pem(pub: Ed25519PublicKey) -> str:
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_id(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _write_pub(path: Path, pub: Ed25519PublicKey) -> None:
    p = pub_path(path)
    if p.exists():
        return
    try:
        _write_new(p, public_pem(pub).encode(), 0o644)
    except OSError as e:
        log.warning("could not write the audit public key beside the private key (%s): %s", p, e.strerror or e)


def load_signing_key(create: bool = True) -> Ed25519PrivateKey:
    """The private key: the file ALPHA_AUDIT_SIGNING_KEY_FILE names, or the default one, generated on first use
    (mode 0600, safe when processes race) when ``create``."""
    path, explicit = key_path()
    where = _where(path, explicit)
    if not path.exists() and not explicit and create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            if _write_new(path, pem, 0o600):
                log.info("generated the audit signing key %s", path)
        except OSError as e:
            raise ConfigError([f"{where}: cannot create it: {e.strerror or e}"]) from None
    if not path.exists():
        hint = ("create one with `openssl genpkey -algorithm ed25519 -out FILE`" if explicit
                else "run `alpha audit checkpoint` or `alpha audit pubkey` once to generate it, or pass --pubkey")
        raise ConfigError([f"{where}: no such file ({hint})"])
    key = parse_private_key(_read(path, where), where)
    _write_pub(path, key.public_key())
    return key


def load_public_key(file: str | Path | None = None) -> Ed25519PublicKey:
    """``file`` (a public key in any form parse_public_key reads), or the configured key's public half: from the
    private key when it can be read, else from the ``.pub`` beside it."""
    if file is not None:
        p = Path(file).expanduser()
        return parse_public_key(_read(p, f"--pubkey {p}"), f"--pubkey {p}")
    path, explicit = key_path()
    if path.exists():
        return load_signing_key(create=False).public_key()
    pub = pub_path(path)
    if pub.exists():
        return parse_public_key(_read(pub, str(pub)), str(pub))
    raise ConfigError([f"{_where(path, explicit)}: no such file, and no {pub.name} beside it: pass --pubkey FILE "
                       "(the public key the checkpoints were signed with)"])


# ---------------------------------------------------------------------------------------------- checkpoints

def db_fingerprint(url: str) -> str:
    """Names the database a checkpoint belongs to: sha256 of its URL without the password, first 16 hex."""
    try:
        text = make_url(url)._replace(password=None).render_as_string(hide_password=False)  # set() keeps a None
    except Exception:  # noqa: BLE001 - an URL SQLAlchemy cannot parse still names something
        text = url
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def canonical(cp: dict) -> bytes:
    """The signed bytes: every field but ``sig``, JSON with sorted keys and no spaces."""
    return json.dumps({k: v for k, v in cp.items() if k != "sig"}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def sign(fields: dict, key: Ed25519PrivateKey) -> dict:
    cp = {k: v for k, v in fields.items() if k != "sig"}
    cp["sig"] = base64.b64encode(key.sign(canonical(cp))).decode()
    return cp


def to_line(cp: dict) -> str:
    return json.dumps(cp, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _walk(s, after_seq: int, after_hash: str, upto_seq: int, upto_hash: str, batch: int = 5000
          ) -> tuple[str | None, int | None]:
    """Check rows after_seq+1 .. upto_seq: consecutive, each matching its own hash and following the one before,
    starting from ``after_hash`` and ending at ``upto_hash``. (problem, first bad seq) or (None, None)."""
    if upto_seq < after_seq:
        return (f"the head went back from row {after_seq} to row {upto_seq}: rows {upto_seq + 1}-{after_seq} "
                "were deleted", upto_seq + 1)
    expected, prev, last = after_seq + 1, after_hash, after_seq
    while last < upto_seq:
        rows = s.exec(select(AuditEntry).where(col(AuditEntry.seq) > last, col(AuditEntry.seq) <= upto_seq)
                      .order_by(col(AuditEntry.seq)).limit(batch)).all()
        if not rows:
            break
        for e in rows:
            if e.seq != expected:
                return f"row {expected} is missing: the chain jumps from row {expected - 1} to row {e.seq}", expected
            if audit.row_digest(e) != e.row_hash:
                return f"row {e.seq} was edited: its content does not match its hash", e.seq
            if e.prev_hash != prev:
                return f"row {e.seq} does not follow row {e.seq - 1} (out of order or replaced)", e.seq
            prev, expected, last = e.row_hash, expected + 1, e.seq
    if expected - 1 != upto_seq:
        return f"rows {expected}-{upto_seq} are missing: the head records {upto_seq} rows", expected
    if prev != upto_hash:
        return f"the head's hash does not match row {upto_seq}", upto_seq
    return None, None


def make_checkpoint(app: Alerting, key: Ed25519PrivateKey, verified: tuple[int, str] | None = None) -> dict:
    """Sign the current head after checking the chain up to it (from row 1, or on from ``verified``: a
    (seq, row_hash) already checked). Refuses an empty or broken chain (CheckpointError)."""
    after_seq, after_hash = verified if verified else (0, GENESIS_HASH)
    with app.store.read() as s:
        head = s.get(AuditHead, 1)
        if head is None or head.last_seq == 0:
            raise CheckpointError("the audit trail is empty: nothing to checkpoint yet")
        problem, bad = _walk(s, after_seq, after_hash, head.last_seq, head.last_hash)
        if problem:
            raise CheckpointError(f"refusing to sign a broken audit chain (at row {bad}): {problem}. "
                                  "Run `alpha audit verify` and investigate before anchoring it")
        n = int(s.exec(select(func.count()).select_from(AuditEntry).where(AuditEntry.seq <= head.last_seq)).one())
        seq, last_hash = head.last_seq, head.last_hash
    fields = {"seq": seq, "head": last_hash, "at": iso(app.clock()), "count": n,
              "key_id": key_id(key.public_key()), "db": db_fingerprint(app.store.url)}
    return sign(fields, key)


# ---------------------------------------------------------------------------------------------- destinations

def safe_url(url: str) -> str:
    """The URL without credentials, query or fragment (either may hold a token), for messages."""
    try:
        u = httpx.URL(url)
        port = f":{u.port}" if u.port else ""
        return f"{u.scheme}://{u.host}{port}{u.path}"
    except Exception:  # noqa: BLE001
        return "<the configured URL>"


@dataclass(frozen=True)
class Destination:
    path: Path | None = None
    url: str | None = None

    @property
    def file(self) -> Path:
        """The checkpoint file, for a destination without a URL (destination() always sets one of the two)."""
        if self.path is None:
            raise CheckpointError(f"the checkpoint destination has neither a file nor a URL ({DEST_ENV})")
        return self.path

    def describe(self) -> str:
        return safe_url(self.url) if self.url else os.path.abspath(self.file)


def destination() -> Destination:
    """Where checkpoints go: ALPHA_AUDIT_CHECKPOINTS (a file path or an http(s) URL), validated."""
    v = os.environ.get(DEST_ENV, "").strip()
    if not v:
        return Destination(path=_data_dir() / "audit-checkpoints.jsonl")
    scheme = v.split("://", 1)[0].lower() if "://" in v else ""
    if scheme in ("http", "https"):
        try:
            u = httpx.URL(v)
        except Exception:  # noqa: BLE001 - httpx.InvalidURL and friends
            raise ConfigError([f"{DEST_ENV}: not a valid URL ({safe_url(v)})"]) from None
        if not u.host:
            raise ConfigError([f"{DEST_ENV}: the URL {safe_url(v)} has no host"])
        return Destination(url=v)
    if scheme:
        raise ConfigError([f"{DEST_ENV}: unsupported scheme {scheme!r}: give a file path or an http(s) URL"])
    p = Path(v).expanduser()
    if p.is_dir():
        raise ConfigError([f"{DEST_ENV}={v}: is a directory; name a file (one JSON line is appended per "
                           "checkpoint)"])
    return Destination(path=p)


def _append(path: Path, line: str) -> None:
    data = line.encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - not POSIX
                pass
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn last line stays on its own line
                data = b"\n" + data
            os.write(fd, data + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(path.parent)
    except OSError as e:
        raise CheckpointError(f"cannot append the checkpoint to {os.path.abspath(path)} ({DEST_ENV}): "
                              f"{e.strerror or e}") from None


class _Retryable(Exception):
    pass


def _post(url: str, line: str, attempts: int, backoff: float, timeout: float,
          transport: httpx.BaseTransport | None) -> None:
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

    where = safe_url(url)
    try:
        with httpx.Client(timeout=timeout, transport=transport, follow_redirects=False) as client:
            for attempt in Retrying(stop=stop_after_attempt(max(1, attempts)),
                                    wait=wait_exponential(multiplier=backoff, max=max(backoff, 10.0)),
                                    retry=retry_if_exception_type((httpx.TransportError, _Retryable)),
                                    reraise=True):
                with attempt:
                    r = client.post(url, content=line.encode(), headers={"content-type": "application/json"})
                    if r.status_code in (408, 425, 429) or r.status_code >= 500:
                        raise _Retryable(f"HTTP {r.status_code}")
                    if not 200 <= r.status_code < 300:
                        raise CheckpointError(f"the checkpoint was refused by {where} ({DEST_ENV}): HTTP "
                                              f"{r.status_code} {r.text[:200].strip()}")
    except (_Retryable, httpx.HTTPError) as e:
        detail = str(e) or type(e).__name__
        raise CheckpointError(f"the checkpoint was not delivered to {where} ({DEST_ENV}) after {attempts} "
                              f"attempt(s): {detail}") from None


def deliver(cp: dict, dest: Destination, *, attempts: int = 4, backoff: float = 0.5, timeout: float = 10.0,
            transport: httpx.BaseTransport | None = None) -> str:
    """Append or POST one checkpoint; returns where it went. Any failure raises CheckpointError."""
    line = to_line(cp)
    if dest.url:
        _post(dest.url, line, attempts, backoff, timeout, transport)
    else:
        _append(dest.file, line)
    return dest.describe()


def checkpoint(app: Alerting, *, verified: tuple[int, str] | None = None, dest: Destination | None = None,
               key: Ed25519PrivateKey | None = None, **deliver_kw) -> dict:
    """Check the chain, sign its head and deliver the checkpoint now: {"checkpoint": {...}, "where": str}."""
    key = key or load_signing_key()
    dest = dest or destination()
    cp = make_checkpoint(app, key, verified)
    where = deliver(cp, dest, **deliver_kw)
    log.info("audit checkpoint seq %s head %s written to %s", cp["seq"], cp["head"][:16], where)
    return {"checkpoint": cp, "where": where}


# ---------------------------------------------------------------------------------------------- verification

@dataclass
class _Line:
    line: int
    cp: dict


def _parse(text: str) -> tuple[dict | None, str | None]:
    try:
        cp = json.loads(text)
    except ValueError as e:
        return None, f"not JSON ({e})"
    if not isinstance(cp, dict):
        return None, "not a JSON object"
    missing = [f for f in FIELDS if f not in cp]
    if missing:
        return None, f"not a checkpoint: {', '.join(missing)} missing"
    for f in ("seq", "count"):
        if not isinstance(cp[f], int) or isinstance(cp[f], bool) or cp[f] < 0:
            return None, f"not a checkpoint: {f} is not a whole number"
    for f in ("head", "at", "key_id", "db", "sig"):
        if not isinstance(cp[f], str):
            return None, f"not a checkpoint: {f} is not text"
    return cp, None


def _check_sig(cp: dict, keys: dict[str, Ed25519PublicKey]) -> str | None:
    pub = keys.get(cp["key_id"])
    if pub is None:
        return (f"signed by another key (key_id {cp['key_id']}; expected "
                f"{' or '.join(sorted(keys))}): forged, or pass the right --pubkey")
    sig = _b64(cp["sig"].encode())
    if sig is None or len(sig) != 64:
        return "the signature is not a base64 Ed25519 signature"
    try:
        pub.verify(sig, canonical(cp))
    except InvalidSignature:
        return "the signature does not match the content: the line was edited or forged"
    if not _HEX64.match(cp["head"]):
        return "the signed head is not a row hash"
    return None


def verify_checkpoints(app: Alerting, lines: Iterable[str], pubkeys: Ed25519PublicKey | list[Ed25519PublicKey], *,
                       chain: audit.VerifyResult | None = None, source: str = "", any_db: bool = False) -> dict:
    """Check every checkpoint line against the stored chain: its signature, that it names this database (unless
    ``any_db``), that row ``seq`` exists and holds the signed hash, and that the chain verifies up to it.

    Returns {"ok", "file", "key_ids", "db", "checkpoints", "matched", "other_db", "newest", "problems":
    [{"line", "seq", "problem"}], "diverges": {"after_seq", "at_or_before_seq", "text"} | None}."""
    keys = {key_id(k): k for k in (pubkeys if isinstance(pubkeys, list) else [pubkeys])}
    db = db_fingerprint(app.store.url)
    if chain is None:
        with app.store.read() as s:
            chain = audit.verify(s)
    problems: list[dict] = []
    valid: list[_Line] = []
    other_db: list[_Line] = []
    total = 0
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        total += 1
        cp, why = _parse(text)
        if cp is None:
            problems.append({"line": n, "seq": None, "problem": why})
            continue
        why = _check_sig(cp, keys)
        if why:
            problems.append({"line": n, "seq": cp["seq"], "problem": why})
        elif cp["db"] != db and not any_db:
            other_db.append(_Line(n, cp))
        else:
            valid.append(_Line(n, cp))

    report = {"ok": False, "file": source, "key_ids": sorted(keys), "db": db, "checkpoints": total, "matched": 0,
              "other_db": len(other_db), "newest": None, "problems": problems, "diverges": None}
    if total == 0:
        problems.append({"line": None, "seq": None, "problem": f"{source or 'the file'} holds no checkpoints"})
        return report
    if not valid and other_db and not problems:
        names = sorted({c.cp["db"] for c in other_db})
        problems.append({"line": None, "seq": None,
                         "problem": f"none of the {len(other_db)} checkpoints is for this database (db {db}; they "
                                    f"name {', '.join(names)}): pass --any-db if this database moved"})
        return report

    seqs = sorted({c.cp["seq"] for c in valid})
    stored: dict[int, str] = {}
    with app.store.read() as s:
        for i in range(0, len(seqs), 500):
            for seq, h in s.exec(select(AuditEntry.seq, AuditEntry.row_hash)
                                 .where(col(AuditEntry.seq).in_(seqs[i:i + 500]))).all():
                stored[seq] = h
        last_row = s.exec(select(func.max(AuditEntry.seq))).one() or 0

    good: list[_Line] = []
    diverged: list[_Line] = []
    for c in valid:
        seq, signed = c.cp["seq"], c.cp["head"]
        have = stored.get(seq)
        if have is None:
            why = (f"row {seq} is missing: the stored chain ends at row {last_row} (truncated: the signed head is "
                   f"{signed[:16]})" if seq > last_row else
                   f"row {seq} is missing (deleted); the checkpoint signed {signed[:16]}")
            problems.append({"line": c.line, "seq": seq, "problem": why})
            diverged.append(c)
        elif have != signed:
            problems.append({"line": c.line, "seq": seq,
                             "problem": f"row {seq} has hash {have[:16]}, the checkpoint signed {signed[:16]}: the "
                                        "chain was rewritten after this checkpoint was made"})
            diverged.append(c)
        elif not chain.ok and chain.first_bad_seq is not None and chain.first_bad_seq <= seq:
            problems.append({"line": c.line, "seq": seq,
                             "problem": f"the chain is broken at row {chain.first_bad_seq}, before this "
                                        f"checkpoint's row: {chain.problem}"})
        else:
            good.append(c)
    report["matched"] = len(good)
    if valid:
        newest = max(valid, key=lambda c: (c.cp["seq"], c.line))
        report["newest"] = {"line": newest.line, "seq": newest.cp["seq"], "at": newest.cp["at"]}
    if diverged:
        first = min(diverged, key=lambda c: (c.cp["seq"], c.line))
        before = [c for c in good if c.cp["seq"] < first.cp["seq"]]
        after = max((c.cp["seq"] for c in before), default=0)
        upto = first.cp["seq"]
        if upto > last_row:
            text = (f"the stored chain is truncated: it ends at row {last_row}, but line {first.line} signed row "
                    f"{upto}" + (f" (row {after} still matches its checkpoint)" if after else ""))
        elif after + 1 == upto:
            text = f"the stored chain diverges at row {upto} (first checkpoint that disagrees: line {first.line})"
        elif after:
            text = (f"the stored chain diverges between rows {after + 1} and {upto}: row {after} still matches its "
                    f"checkpoint, row {upto} (line {first.line}) does not")
        else:
            text = (f"the stored chain diverges at or before row {upto} (line {first.line}; no earlier checkpoint "
                    "to narrow it down)")
        report["diverges"] = {"after_seq": after, "at_or_before_seq": upto, "text": text}
    report["ok"] = not problems
    return report


# ---------------------------------------------------------------------------------------------- periodic

def _env_number(name: str, default: float, integer: bool) -> float:
    v = os.environ.get(name, "").strip()
    if not v:
        return default
    try:
        x = int(v) if integer else float(v)
    except ValueError:
        kind = "a whole number" if integer else "a number of seconds"
        raise ConfigError([f"{name}={v!r}: not {kind} (0 turns this trigger off)"]) from None
    if x < 0 or x != x or x == float("inf"):
        raise ConfigError([f"{name}={v!r}: must be 0 (off) or positive"])
    return x


def periodic_settings() -> tuple[float, int]:
    """(every_seconds, every_rows) from ALPHA_AUDIT_CHECKPOINT_SECONDS / _ROWS, validated."""
    return (_env_number(SECONDS_ENV, DEFAULT_EVERY_SECONDS, False),
            int(_env_number(ROWS_ENV, DEFAULT_EVERY_ROWS, True)))


@dataclass
class _State:
    key: Ed25519PrivateKey
    dest: Destination
    last_at: float | None = None   # monotonic time of the last checkpoint written by this process
    seq: int = 0                   # the chain is known good up to here (the last checkpoint's head)
    head: str = GENESIS_HASH
    verified: bool = False
    retry_at: float = 0.0
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


_STATES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()
RETRY_SECONDS = 60.0


def maybe_checkpoint(app: Alerting, every_seconds: float | None = None, every_rows: int | None = None, *,
                     clock: Callable[[], float] = time.monotonic, **deliver_kw) -> dict | None:
    """Write a checkpoint when one is due: ``every_seconds`` since this process's last one, or ``every_rows``
    new rows, whichever first (defaults from the environment; 0 turns a trigger off); the first call writes one
    at once. Nothing when the head has not moved. Cheap when not due (one read of the head row): call it from a
    worker loop on every pass.

    The first call resolves the key and the destination (a bad environment value raises ConfigError then).
    Afterwards it never raises for a failed checkpoint (a broken chain, an unreachable destination): the error is
    logged, alerted (Slack) and returned as {"ok": False, "error": ...}, and tried again 1, 2, 4 ... minutes
    later.
    Database errors propagate (the worker's own backoff handles them). Returns None when nothing was due, else
    {"ok": True, "checkpoint": {...}, "where": ...}."""
    if every_seconds is None or every_rows is None:
        secs, rows = periodic_settings()
        every_seconds = secs if every_seconds is None else every_seconds
        every_rows = rows if every_rows is None else every_rows
    with _STATES_LOCK:
        st = _STATES.get(app)
        if st is None:
            st = _State(key=load_signing_key(), dest=destination())
            _STATES[app] = st
    if not every_seconds and not every_rows:
        return None
    with st.lock:
        now = clock()
        if now < st.retry_at:
            return None
        with app.store.read() as s:
            head = s.get(AuditHead, 1)
        if head is None or head.last_seq == 0:
            return None
        moved = head.last_seq != st.seq or head.last_hash != st.head
        due = (st.last_at is None or (every_seconds and now - st.last_at >= every_seconds)
               or (every_rows and head.last_seq - st.seq >= every_rows))
        regressed = st.verified and moved and head.last_seq <= st.seq  # rewound or rewritten: say so at once
        if not (moved and due) and not regressed:
            return None
        try:
            out = checkpoint(app, verified=(st.seq, st.head) if st.verified else None, dest=st.dest, key=st.key,
                             **deliver_kw)
        except (ConfigError, CheckpointError) as e:
            st.failures += 1  # 1, 2, 4 ... minutes apart (at most an hour): loud, not a flood of alerts
            st.retry_at = now + min(3600.0, RETRY_SECONDS * 2 ** (st.failures - 1))
            msg = str(e)
            log.error("audit checkpoint failed: %s", msg)
            app.alert_dict({"kind": "audit_checkpoint_failed", "title": "Audit checkpoint failed", "text": msg,
                            "fields": {"destination": st.dest.describe()}})
            return {"ok": False, "error": msg}
        cp = out["checkpoint"]
        st.seq, st.head, st.verified, st.last_at, st.retry_at, st.failures = cp["seq"], cp["head"], True, now, 0.0, 0
        return {"ok": True, **out}


class PeriodicCheckpoints:
    """``maybe_checkpoint`` on a background thread every ``poll`` seconds, for a loop that cannot call it
    itself (``alpha worker``). ``start()`` resolves the settings, key and destination first, so a bad
    environment value stops the caller before it begins. Database outages are logged and retried."""

    def __init__(self, app: Alerting, poll: float = 5.0):
        self.app = app
        self.poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "PeriodicCheckpoints":
        secs, rows = periodic_settings()
        load_signing_key()
        destination()
        if not secs and not rows:
            return self
        self._thread = threading.Thread(target=self._run, name="audit-checkpoints", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                maybe_checkpoint(self.app)
            except (OperationalError, InterfaceError) as e:
                first = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0]
                log.warning("audit checkpoint: database unavailable (%s); retrying", first)
            except Exception as e:  # noqa: BLE001 - never end the thread: the next pass tries again
                log.error("audit checkpoint failed unexpectedly: %s: %s", type(e).__name__, audit.redact(str(e)))
            self._stop.wait(self.poll)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
