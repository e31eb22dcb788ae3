"""Admins read the audit trail (`bot.store.audit`): the page `/staff/audit`, `/staff/audit.csv` and
`GET /staff/api/audit`.

All three take the same filters: `account`, `office`, `ref` (a booking ref), `from` and `to`
(YYYY-MM-DD, Japan-time days, inclusive). Without `from` and `to` they cover the last 7 days (today
and the 6 before); with only `to`, the 7 days up to it; with only `from`, from it to today. Newest first.
`current_account()` (the caller's) says who is signed in: an object with `.id`, `.role` (`admin` or
`staff`) and `.offices`, or None; only admins get an answer (403 otherwise).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, flash, jsonify, render_template, request

from bot.service import BotService
from bot.staff.actions import office_label

# Rows on the page and in the API answer; the CSV holds more.
MAX_ROWS = 1000
MAX_CSV_ROWS = 100_000
DEFAULT_DAYS = 7
CSV_COLUMNS = ("at", "account", "action", "office", "ref", "client", "detail")
API_FIELDS = ("at", "account", "action", "office", "ref", "client")
# Set on a CSV or API answer that holds fewer entries than match (narrow the days to see the rest).
TRUNCATED_HEADER = "X-Audit-Truncated"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Filters:
    account: str
    office: str
    ref: str
    since: date
    until: date

    def args(self) -> dict[str, str]:
        """As query parameters (for the CSV link)."""
        found = {"account": self.account, "office": self.office, "ref": self.ref,
                 "from": self.since.isoformat(), "to": self.until.isoformat()}
        return {name: value for name, value in found.items() if value}


class BadFilter(ValueError):
    """A parameter that is not what it should be: `str()` names it (the API's message), `japanese`
    says it to staff (the page)."""

    def __init__(self, parameter: str, message: str, japanese: str):
        super().__init__(f"{parameter}: {message}")
        self.japanese = japanese


def read_filters(args: Mapping[str, str], today: date) -> Filters:
    """The filters of a query string; raises BadFilter naming a bad day or an empty range."""
    days: dict[str, date | None] = {}
    for name in ("from", "to"):
        text = (args.get(name) or "").strip()
        if not text:
            days[name] = None
            continue
        try:
            if not _DAY.fullmatch(text):
                raise ValueError(text)
            days[name] = date.fromisoformat(text)
        except ValueError:
            label = "開始日" if name == "from" else "終了日"
            raise BadFilter(name, "must be YYYY-MM-DD", f"{label}は 2026-12-01 の形で指定してください。") from None
    until = days["to"] or today
    since = days["from"] or (until - timedelta(days=DEFAULT_DAYS - 1))
    if since > until:
        raise BadFilter("from", "must not be after to", "開始日は終了日以前の日にしてください。")
    return Filters(account=(args.get("account") or "").strip(), office=(args.get("office") or "").strip(),
                   ref=(args.get("ref") or "").strip(), since=since, until=until)


def default_filters(today: date) -> Filters:
    return read_filters({}, today)


def _csv_cell(name: str, value: str) -> str:
    """A cell Excel would run as a formula (=, +, -, @) is quoted as text (CSV injection)."""
    return "'" + value if name != "at" and value[:1] in ("=", "+", "-", "@") else value


def add_routes(bp: Blueprint, service: BotService, *, current_account: Callable[[], Any],
               api_error: Callable[[int, str], Response]) -> None:
    """Register the audit page, its CSV and its API route on the staff blueprint (admins only)."""

    def is_admin() -> bool:
        account = current_account()
        return account is not None and getattr(account, "role", None) == "admin"

    @bp.context_processor
    def _audit_link() -> dict[str, Any]:
        return {"can_audit": is_admin}  # a callable: asked only where the navigation shows

    def today() -> date:
        return service.clock.now().date()

    def entries(filters: Filters, limit: int) -> tuple[list[dict[str, str]], bool]:
        """Up to `limit` entries, and whether more matched."""
        found = service.audit.query(account=filters.account or None, office=filters.office or None,
                                    ref=filters.ref or None, since=filters.since, until=filters.until,
                                    limit=limit + 1)
        return found[:limit], len(found) > limit

    def refused_page() -> Response:
        return Response(render_template("staff/message.html", title="表示できません",
                                        message="監査ログは管理者だけが見られます。"), status=403)

    @bp.get("/audit")
    def audit_page() -> Response | str:
        if not is_admin():
            return refused_page()
        try:
            filters = read_filters(request.args, today())
        except BadFilter as exc:
            flash(exc.japanese + "直近7日間を表示しています。", "error")
            filters = default_filters(today())
        rows, cut = entries(filters, MAX_ROWS)
        for row in rows:
            row["office_label"] = office_label(service.offices, row["office"]) if row["office"] else ""
        return render_template("staff/audit.html", rows=rows, cut=cut, limit=MAX_ROWS, filters=filters,
                               csv_args=filters.args())

    @bp.get("/audit.csv")
    def audit_csv() -> Response:
        if not is_admin():
            return refused_page()
        try:
            filters = read_filters(request.args, today())
        except BadFilter as exc:
            return Response(f"{exc}\n", status=400, mimetype="text/plain")
        rows, cut = entries(filters, MAX_CSV_ROWS)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([_csv_cell(name, row[name]) for name in CSV_COLUMNS])
        name = f"hwbot-audit-{filters.since.isoformat()}-{filters.until.isoformat()}.csv"
        response = Response(out.getvalue().encode("utf-8"), headers={
            "Content-Type": "text/csv; charset=utf-8", "Content-Disposition": f'attachment; filename="{name}"'})
        if cut:
            response.headers[TRUNCATED_HEADER] = "true"
        return response

    @bp.get("/api/audit")
    def api_audit() -> Response:
        account = current_account()
        if account is None:
            return api_error(401, "missing or wrong bearer token")
        if getattr(account, "role", None) != "admin":
            return api_error(403, "the audit trail is for admins only")
        try:
            filters = read_filters(request.args, today())
        except BadFilter as exc:
            return api_error(400, str(exc))
        rows, cut = entries(filters, MAX_ROWS)
        response = jsonify({"entries": [{name: row[name] for name in API_FIELDS} for row in rows]})
        if cut:
            response.headers[TRUNCATED_HEADER] = "true"
        return response
