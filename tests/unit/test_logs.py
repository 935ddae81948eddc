"""Structured logs (engine/adapters/logs.py): one JSON object or one logfmt line per record, with time (ISO UTC), level,
logger, message and the record's extra fields; level and format from ALPHA_LOG_LEVEL and ALPHA_LOG_FORMAT.

Seen before (issue 14): the long-running commands configured no logging at all: records went to Python's
last-resort handler (warnings and errors only, bare text, no time, no level, no logger)."""
from __future__ import annotations

import io
import json
import logging
import re
from datetime import datetime, timedelta, timezone

import pytest

from engine.core.errors import ConfigError
from engine.adapters.logs import configure_logging, configured


@pytest.fixture(autouse=True)
def _restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def _lines(stream: io.StringIO) -> list[str]:
    return [x for x in stream.getvalue().split("\n") if x]


_PAIR = re.compile(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|[^ ]*)(?: |$)')


def parse_logfmt(line: str) -> dict:
    out, pos = {}, 0
    while pos < len(line):
        m = _PAIR.match(line, pos)
        assert m, f"not logfmt at {pos}: {line!r}"
        key, value = m.group(1), m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", lambda g: {"n": "\n", "r": "\r", "t": "\t"}.get(g.group(1), g.group(1)),
                           value[1:-1])
        out[key] = value
        pos = m.end()
    return out


def test_json_lines_carry_time_level_logger_message_and_extra_fields():
    out = io.StringIO()
    configure_logging(out, env={"ALPHA_LOG_FORMAT": "json"})
    before = datetime.now(timezone.utc)
    logging.getLogger("alpha.worker").info("claimed %d rows\nsecond line", 3, extra={"outbox_id": 42,
                                                                                        "domain": "acme.io"})
    logging.getLogger("alpha.gateway").debug("not at INFO")
    lines = _lines(out)
    assert len(lines) == 1, lines  # the newline in the message is escaped, the DEBUG record dropped
    rec = json.loads(lines[0])
    assert rec["level"] == "INFO" and rec["logger"] == "alpha.worker"
    assert rec["message"] == "claimed 3 rows\nsecond line"
    assert rec["outbox_id"] == 42 and rec["domain"] == "acme.io"
    assert rec["time"].endswith("Z")
    t = datetime.fromisoformat(rec["time"].replace("Z", "+00:00"))
    assert t.utcoffset() == timedelta(0) and abs((t - before).total_seconds()) < 5
    assert list(rec)[:4] == ["time", "level", "logger", "message"]


def test_json_exception_is_one_line_with_the_traceback():
    out = io.StringIO()
    configure_logging(out, env={"ALPHA_LOG_FORMAT": "json"})
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("alpha.worker").exception("executor raised")
    (line,) = _lines(out)
    rec = json.loads(line)
    assert rec["level"] == "ERROR" and rec["message"] == "executor raised"
    assert "Traceback" in rec["exc"] and "ValueError: boom" in rec["exc"]


def test_text_format_is_logfmt_with_the_same_fields():
    out = io.StringIO()
    configure_logging(out, env={})  # the default: text
    logging.getLogger("alpha.ghl").warning('GHL said "no" = 429', extra={"retry_in": 1.5, "path": "/contacts/"})
    (line,) = _lines(out)
    rec = parse_logfmt(line)
    assert rec["level"] == "WARNING" and rec["logger"] == "alpha.ghl"
    assert rec["message"] == 'GHL said "no" = 429'
    assert rec["retry_in"] == "1.5" and rec["path"] == "/contacts/"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["time"])


def test_level_comes_from_alpha_log_level():
    out = io.StringIO()
    configure_logging(out, env={"ALPHA_LOG_FORMAT": "json", "ALPHA_LOG_LEVEL": "warning"})
    log = logging.getLogger("alpha.worker")
    log.info("quiet")
    log.warning("loud")
    assert [json.loads(x)["message"] for x in _lines(out)] == ["loud"]
    out2 = io.StringIO()
    configure_logging(out2, env={"ALPHA_LOG_FORMAT": "json", "ALPHA_LOG_LEVEL": "DEBUG"})
    log.debug("now shown")
    assert [json.loads(x)["message"] for x in _lines(out2)] == ["now shown"]


@pytest.mark.parametrize("name,value", [("ALPHA_LOG_FORMAT", "xml"), ("ALPHA_LOG_LEVEL", "verbose")])
def test_a_bad_value_is_refused_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as e:
        configure_logging(io.StringIO(), env={name: value})
    assert name in str(e.value) and repr(value) in str(e.value)


def test_configuring_twice_keeps_one_handler_and_others_survive():
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    configure_logging(io.StringIO(), env={})
    out = io.StringIO()
    configure_logging(out, env={"ALPHA_LOG_FORMAT": "json"})
    assert configured()
    ours = [h for h in root.handlers if getattr(h, "_alpha_structured", None)]
    assert len(ours) == 1 and other in root.handlers
    logging.getLogger("x").warning("once")
    assert len(_lines(out)) == 1


def test_known_secrets_never_reach_a_line(monkeypatch):
    monkeypatch.setenv("ALPHA_METRICS_TOKEN", "metrics-token-0123456789")
    monkeypatch.setenv("GHL_API_KEY", "ghl-key-abcdefghijkl")
    out = io.StringIO()
    configure_logging(out, env={"ALPHA_LOG_FORMAT": "json"})
    logging.getLogger("alpha.ghl").warning("calling with %s and metrics-token-0123456789",
                                           "ghl-key-abcdefghijkl", extra={"api_key": "anything", "n": 1})
    text = out.getvalue()
    assert "metrics-token-0123456789" not in text and "ghl-key-abcdefghijkl" not in text
    rec = json.loads(text)
    assert rec["api_key"] == "[REDACTED]" and rec["n"] == 1 and "[REDACTED]" in rec["message"]


def test_a_bad_format_string_still_gives_a_line():
    handler = configure_logging(io.StringIO(), env={"ALPHA_LOG_FORMAT": "json"})
    record = logging.LogRecord("alpha", logging.ERROR, __file__, 1, "%d items", ("not a number",), None)
    rec = json.loads(handler.format(record))
    assert rec["level"] == "ERROR" and "%d items" in rec["message"]


def test_extra_fields_named_like_reserved_ones_do_not_overwrite_them():
    out = io.StringIO()
    configure_logging(out, env={"ALPHA_LOG_FORMAT": "json"})
    logging.getLogger("alpha.x").info("hello", extra={"time": "yesterday", "level": "fake"})
    rec = json.loads(_lines(out)[0])
    assert rec["level"] == "INFO" and rec["time"] != "yesterday"
    assert rec["time_"] == "yesterday" and rec["level_"] == "fake"
