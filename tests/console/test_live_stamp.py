"""A page's "as of" stamp counts its age on in the open page, and warns once the page is old.

Issue 13: "every state on every page is live or visibly stamped with its age". The stamp used to be computed
once, when the page was drawn, so a page left open for an hour still said "(0 s ago)". Now it is a fragment that
re-renders every STAMP_TICK_SECONDS without re-reading the data (tests/e2e/test_live_state_browser.py watches the
age grow in chromium), and after STALE_AFTER it becomes a warning telling the person to read the page again.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.console.conftest import no_exception, text

UTC = timezone.utc
T0 = datetime(2026, 12, 6, 14, 5, 3, tzinfo=UTC)


def test_stamp_text_counts_the_age_from_when_the_data_was_read():
    from console.widgets import STALE_AFTER, stamp_text

    stale, t = stamp_text(T0, "Status", now=T0 + timedelta(seconds=42))
    assert not stale and "Status as of" in t and "14:05:03" in t and "(42 s ago)" in t
    stale, t = stamp_text(T0, "Status", now=T0 + STALE_AFTER)
    assert not stale
    stale, t = stamp_text(T0, "Status", now=T0 + STALE_AFTER + timedelta(seconds=1))
    assert stale and "Refresh" in t and "ago" in t


def test_the_stamp_is_a_fragment_with_a_timer():
    """The stamp's age is re-counted in the open page: it is drawn by a fragment that runs on a timer."""
    import console.widgets as w

    assert w.STAMP_TICK_SECONDS <= 15
    src = open(w.__file__, encoding="utf-8").read()
    assert "@st.fragment(run_every=STAMP_TICK_SECONDS)\ndef _live_stamp" in src


@pytest.mark.parametrize("page,who,what", [("pages/status.py", "ops", "Status"),
                                           ("pages/integrations.py", "ops", "Page"),
                                           ("pages/kill_switch.py", "ops", "Rollout phase and last changes")])
def test_a_fresh_page_shows_a_caption_and_an_old_one_a_warning(ctx, monkeypatch, page, who, what):
    import console.widgets as w

    at = no_exception(ctx.page(page, who))
    assert f"{what} as of" in text(at.caption)
    assert f"{what} as of" not in text(at.warning)

    read_at = datetime.now(UTC) - w.STALE_AFTER - timedelta(minutes=1)
    real = w.stamp_text
    monkeypatch.setattr(w, "stamp_text", lambda when, what="Shown", now=None: real(
        when, what, now=(now or datetime.now(UTC)) + (datetime.now(UTC) - read_at)))
    at = no_exception(ctx.page(page, who))
    warnings = text(at.warning)
    assert f"{what} as of" in warnings and "Refresh" in warnings
