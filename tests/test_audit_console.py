"""The audit trail's page, CSV and API (`bot.staff.audit`): filters, shapes, and admins only."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from flask import Blueprint, Flask, jsonify

from bot.clock import parse_instant
from bot.staff import audit as audit_pages
from bot.staff.assets import create_blueprint as staff_assets
# The console's own fixtures (a LINE-mode app and its service).
from test_console import app, service  # noqa: F401


@pytest.fixture
def staff(staff_member, service):
    """An admin (with TOTP), signed in, on an empty trail: its login's entries are not these tests' subject."""
    member = staff_member("監査 管理", admin=True)
    service.client.delete("hwbot:audit")
    return member


@pytest.fixture
def api_headers(staff):
    """The admin's API token."""
    return staff.bearer


@pytest.fixture
def trail(service, clock, staff):
    """Entries over four days (the clock ends on 2026-11-20 10:00): (day, account, action, office, ref)."""
    rows = [
        ("2026-11-10T09:00", "old", "login", "", ""),
        ("2026-11-14T09:00", "a1", "login", "", ""),  # 7 days back from the 20th: just inside the default
        ("2026-11-18T11:00", "a1", "booking_view", "noto", "noto|2026-11-25T10:00|AAAA1111"),
        ("2026-11-19T15:30", "b2", "booking_cancel", "izumo", "izumo|2026-11-26T10:00|BBBB2222"),
        ("2026-11-20T09:59", "b2", "booking_view", "noto", "noto|2026-11-25T10:00|AAAA1111"),
    ]
    start = clock.now()
    for instant, account, action, office, ref in rows:
        clock.instant = parse_instant(instant)
        service.audit.record(account, action, office=office, ref=ref, client="192.0.2.7", detail="ok")
    clock.instant = start
    return rows


def table(page: str) -> list[list[str]]:
    body = page.split('<table id="entries">', 1)[1].split("</table>", 1)[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1])]


def flashes(page: str) -> list[str]:
    return re.findall(r'<div class="flash error" role="status">(.*?)</div>', page)


def test_the_page_shows_the_last_seven_days_newest_first(staff, trail):
    page = staff.client.get("/staff/audit").get_data(as_text=True)
    assert [row[1:5] for row in table(page)] == [
        ["b2", "booking_view", "ハローワーク能登", "noto|2026-11-25T10:00|AAAA1111"],
        ["b2", "booking_cancel", "ハローワーク出雲", "izumo|2026-11-26T10:00|BBBB2222"],
        ["a1", "booking_view", "ハローワーク能登", "noto|2026-11-25T10:00|AAAA1111"],
        ["a1", "login", "", ""],
    ]
    assert table(page)[0][0] == "2026-11-20T09:59:00+09:00" and table(page)[0][5:] == ["192.0.2.7", "ok"]
    assert 'id="from" name="from" value="2026-11-14"' in page and 'id="to" name="to" value="2026-11-20"' in page
    assert "監査ログ</a>" in page  # the admin's navigation links it
    assert 'id="cut"' not in page


def test_the_page_filters_by_account_office_ref_and_days(staff, trail):
    def accounts_actions(query: str) -> list[str]:
        page = staff.client.get("/staff/audit?" + query).get_data(as_text=True)
        assert not flashes(page), flashes(page)
        return [] if 'id="entries"' not in page else [f"{r[1]}:{r[2]}" for r in table(page)]

    assert accounts_actions("account=a1") == ["a1:booking_view", "a1:login"]
    assert accounts_actions("office=noto") == ["b2:booking_view", "a1:booking_view"]
    assert accounts_actions("ref=izumo%7C2026-11-26T10%3A00%7CBBBB2222") == ["b2:booking_cancel"]
    assert accounts_actions("from=2026-11-18&to=2026-11-19") == ["b2:booking_cancel", "a1:booking_view"]
    assert accounts_actions("from=2026-11-01&to=2026-11-10") == ["old:login"]
    assert accounts_actions("account=b2&office=noto&from=2026-11-20") == ["b2:booking_view"]
    assert accounts_actions("account=nobody") == []
    page = staff.client.get("/staff/audit?account=nobody").get_data(as_text=True)
    assert "この条件に合う記録はありません" in page


def test_only_to_covers_the_seven_days_up_to_it(staff, trail):
    page = staff.client.get("/staff/audit?to=2026-11-16").get_data(as_text=True)
    assert [f"{r[1]}:{r[2]}" for r in table(page)] == ["a1:login", "old:login"]
    assert 'value="2026-11-10"' in page


@pytest.mark.parametrize("query, message", [
    ("from=2026-13-01", "開始日は 2026-12-01 の形で指定してください。直近7日間を表示しています。"),
    ("to=20261120&account=a1", "終了日は 2026-12-01 の形で指定してください。直近7日間を表示しています。"),
    ("from=2026-11-20&to=2026-11-19", "開始日は終了日以前の日にしてください。直近7日間を表示しています。"),
])
def test_a_bad_day_says_so_and_shows_the_unfiltered_last_seven_days(staff, trail, query, message):
    response = staff.client.get("/staff/audit?" + query)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert flashes(page) == [message]
    assert len(table(page)) == 4  # every account, the default days
    # The message was for this page only: the next one does not repeat it.
    assert flashes(staff.client.get("/staff/audit").get_data(as_text=True)) == []


def test_at_most_1000_rows_with_a_note(staff, service, clock, monkeypatch, api_headers):
    monkeypatch.setattr(audit_pages, "MAX_ROWS", 3)
    for n in range(4):
        clock.advance(timedelta(seconds=1))
        service.audit.record(f"s{n}", "login")
    page = staff.client.get("/staff/audit").get_data(as_text=True)
    assert [r[1] for r in table(page)] == ["s3", "s2", "s1"]
    assert "新しい 3 件だけを表示しています" in page
    assert audit_pages.MAX_ROWS == 3 and "条件に合う記録が 3 件を超えた" in page
    api = staff.client.get("/staff/api/audit", headers=api_headers)
    assert len(api.get_json()["entries"]) == 3 and api.headers["X-Audit-Truncated"] == "true"


def test_the_csv_has_the_same_filters_and_a_header_row(staff, trail):
    response = staff.client.get("/staff/audit.csv?office=noto")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="hwbot-audit-2026-11-14-2026-11-20.csv"'
    assert "X-Audit-Truncated" not in response.headers
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8"))))
    assert rows == [
        ["at", "account", "action", "office", "ref", "client", "detail"],
        ["2026-11-20T09:59:00+09:00", "b2", "booking_view", "noto", "noto|2026-11-25T10:00|AAAA1111", "192.0.2.7", "ok"],
        ["2026-11-18T11:00:00+09:00", "a1", "booking_view", "noto", "noto|2026-11-25T10:00|AAAA1111", "192.0.2.7", "ok"],
    ]
    everything = staff.client.get("/staff/audit.csv?from=2026-11-01")
    assert len(list(csv.reader(io.StringIO(everything.get_data(as_text=True))))) == 1 + 5
    bad = staff.client.get("/staff/audit.csv?from=yesterday")
    assert bad.status_code == 400 and bad.get_data(as_text=True) == "from: must be YYYY-MM-DD\n"
    # The page links the CSV with its filters.
    page = staff.client.get("/staff/audit?account=a1&office=noto").get_data(as_text=True)
    assert 'href="/staff/audit.csv?account=a1&amp;office=noto&amp;from=2026-11-14&amp;to=2026-11-20"' in page


def test_a_csv_cell_excel_would_run_is_quoted(staff, service):
    service.audit.record("=HYPERLINK(1)", "login", client="+81")
    rows = list(csv.reader(io.StringIO(staff.client.get("/staff/audit.csv").get_data(as_text=True))))
    assert rows[1][1] == "'=HYPERLINK(1)" and rows[1][5] == "'+81"


def test_the_api_answers_the_exact_shape(app, trail, api_headers):
    client = app.test_client()
    response = client.get("/staff/api/audit?account=b2&from=2026-11-19&to=2026-11-20", headers=api_headers)
    assert response.status_code == 200
    assert response.get_json() == {"entries": [
        {"at": "2026-11-20T09:59:00+09:00", "account": "b2", "action": "booking_view", "office": "noto",
         "ref": "noto|2026-11-25T10:00|AAAA1111", "client": "192.0.2.7"},
        {"at": "2026-11-19T15:30:00+09:00", "account": "b2", "action": "booking_cancel", "office": "izumo",
         "ref": "izumo|2026-11-26T10:00|BBBB2222", "client": "192.0.2.7"},
    ]}
    assert [e["account"] for e in client.get("/staff/api/audit", headers=api_headers).get_json()["entries"]] == [
        "b2", "b2", "a1", "a1"]
    ref = client.get("/staff/api/audit", query_string={"ref": "noto|2026-11-25T10:00|AAAA1111", "office": "noto"},
                     headers=api_headers).get_json()["entries"]
    assert [e["account"] for e in ref] == ["b2", "a1"]
    for query, error in (("from=2026-11-31", "from: must be YYYY-MM-DD"), ("to=soon", "to: must be YYYY-MM-DD"),
                         ("from=2026-11-20&to=2026-11-01", "from: must not be after to")):
        bad = client.get("/staff/api/audit?" + query, headers=api_headers)
        assert (bad.status_code, bad.get_json()) == (400, {"error": error})
    assert client.get("/staff/api/audit").status_code == 401


def test_the_console_needs_a_login_for_the_audit_pages(app, trail):
    client = app.test_client()
    for path in ("/staff/audit", "/staff/audit.csv"):
        response = client.get(path)
        assert response.status_code == 302 and "/staff/login" in response.headers["Location"]


def non_admin_app(service, account) -> Flask:
    """The audit routes on a blueprint of their own, with `account` signed in (a unit-level app)."""
    app = Flask(__name__)
    app.secret_key = b"unit-test"
    bp = Blueprint("staff", "bot.staff.console", url_prefix="/staff", template_folder="templates")

    @bp.get("/")
    def index() -> str:  # message.html links the day view
        return "index"

    @bp.context_processor
    def _globals() -> dict:
        return {"offices": service.offices, "csrf_token": lambda: "x"}

    def api_error(status: int, message: str):
        response = jsonify({"error": message})
        response.status_code = status
        return response

    audit_pages.add_routes(bp, service, current_account=lambda: account, api_error=api_error)
    app.register_blueprint(bp)
    app.register_blueprint(staff_assets())
    return app


def test_staff_who_are_not_admins_get_403_everywhere(service, trail):
    member = SimpleNamespace(id="s1", role="staff", offices=["noto"])
    client = non_admin_app(service, member).test_client()
    page = client.get("/staff/audit")
    assert page.status_code == 403
    assert "監査ログは管理者だけが見られます。" in page.get_data(as_text=True)
    assert "noto|2026-11-25" not in page.get_data(as_text=True)
    csv_answer = client.get("/staff/audit.csv")
    assert csv_answer.status_code == 403 and "at,account" not in csv_answer.get_data(as_text=True)
    api = client.get("/staff/api/audit")
    assert (api.status_code, api.get_json()) == (403, {"error": "the audit trail is for admins only"})
    signed_out = non_admin_app(service, None).test_client()
    assert signed_out.get("/staff/audit").status_code == 403
    assert signed_out.get("/staff/api/audit").status_code == 401
    # The same unit-level app with an admin answers: the 403 came from the role, not from the app.
    admin = non_admin_app(service, SimpleNamespace(id="a0", role="admin", offices=[])).test_client()
    assert admin.get("/staff/audit").status_code == 200
    assert len(admin.get("/staff/api/audit").get_json()["entries"]) == 4
