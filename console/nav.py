"""The console's pages: module under pages/, title, icon, URL and the roles that may open it.

The navigation shows a user only the pages their roles allow; each page ALSO calls
``require_role(...)`` with exactly these roles (tests/console/test_rules.py keeps the two in step), so a URL
typed by hand is refused on the server. Admin is on every page. The AE never reaches a page that shows the
AI's tier, score or reasoning (the blind review would stop being blind).
"""
from __future__ import annotations

from typing import NamedTuple


class PageSpec(NamedTuple):
    module: str          # pages/<module>.py
    title: str
    icon: str
    url_path: str
    roles: tuple[str, ...]


NAV: tuple[PageSpec, ...] = (
    PageSpec("welcome", "Welcome", ":material/waving_hand:", "welcome", ("ae", "approver", "ops", "admin")),
    PageSpec("status", "Status", ":material/monitoring:", "status", ("ae", "approver", "ops", "admin")),
    PageSpec("readiness", "Readiness", ":material/speed:", "readiness", ("approver", "ops", "admin")),
    PageSpec("blind_review", "Blind review", ":material/visibility_off:", "blind-review", ("ae", "admin")),
    PageSpec("shadow_review", "Shadow review", ":material/drafts:", "shadow-review", ("approver", "admin")),
    PageSpec("approvals", "Approvals", ":material/approval:", "approvals", ("approver", "admin")),
    PageSpec("comparison", "Comparison", ":material/compare:", "comparison", ("approver", "ops", "admin")),
    PageSpec("kill_switch", "Kill switch & rollout", ":material/emergency_home:", "kill-switch", ("ops", "admin")),
    PageSpec("breakers", "Circuit breakers", ":material/electrical_services:", "breakers", ("ops", "admin")),
    PageSpec("deliverability", "Deliverability", ":material/mark_email_read:", "deliverability", ("ops", "admin")),
    PageSpec("audit_log", "Audit log", ":material/receipt_long:", "audit-log", ("ops", "admin")),
    PageSpec("leads", "Leads", ":material/group:", "leads", ("ops", "admin")),
    PageSpec("integrations", "Integrations & settings", ":material/settings:", "integrations", ("ops", "admin")),
)
