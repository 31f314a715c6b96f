"""The register of processing is the single source of truth, and cannot drift from the models.

If a test here fails after you added a column or a table, read its message: it says which
line to add to tracker/domain/register.py.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import markupsafe
import pytest
from sqlalchemy import Column

import tracker.models  # noqa: F401  (registers every table in the metadata)
from tests.conftest import app_config
from tracker import create_app
from tracker.domain import register
from tracker.domain.register import PROCESSINGS, Period, add_months, check_settings
from tracker.domain.roles import ROLES
from tracker.extensions import db

POLICY = Path("/work/shared/seed/privacy-policy.txt")


def tagged_columns() -> dict[str, str]:
    """`table.column` -> data category, for every model column tagged as personal data."""
    return {f"{table.name}.{column.name}": column.info["data_category"]
            for table in db.metadata.sorted_tables for column in table.columns
            if "data_category" in column.info}


def column(name: str) -> Column | None:
    table, _, col = name.partition(".")
    found = db.metadata.tables.get(table)
    return found.columns.get(col) if found is not None else None


def _suggest(name: str, category: str) -> str:
    table = name.split(".")[0]
    same_table = [p.key for p in PROCESSINGS if any(c.startswith(table + ".") for c in p.columns)]
    same_category = [p.key for p in PROCESSINGS if category in p.categories]
    where = same_table or same_category or ["<the processing it serves>"]
    return (f'    "{name}",  # {category}: add to the `columns` of Processing(key='
            f'"{where[0]}")' + ("" if category in register.DATA_CATEGORIES else
                                f' and "{category}" to its categories and DATA_CATEGORIES'))


def test_every_personal_column_is_declared_in_the_register():
    assert "visits.ip" in tagged_columns()  # the models are loaded
    declared = register.declared_columns()
    missing = {name: cat for name, cat in tagged_columns().items() if name not in declared}
    assert not missing, (
        "These model columns are tagged as personal data but the register of processing "
        "(tracker/domain/register.py) does not declare them. Add each line to the `columns` "
        "of the processing named, and give the table a RetentionRule there:\n"
        + "\n".join(_suggest(name, cat) for name, cat in sorted(missing.items())))


def test_every_declared_column_exists_and_is_tagged_with_a_declared_category():
    problems = []
    for processing in PROCESSINGS:
        for name in processing.columns:
            found = column(name)
            if found is None:
                problems.append(f"{processing.key}: {name} does not exist in any model; "
                                "remove it from the register or fix its name")
                continue
            category = found.info.get("data_category")
            if category is None:
                problems.append(f"{processing.key}: {name} is not tagged; add "
                                f'info={{"data_category": "<fideslang key>"}} to its model')
            elif category not in processing.categories:
                problems.append(f"{processing.key}: {name} is tagged {category!r}, which is "
                                f"not in the processing's categories {processing.categories}")
    assert not problems, "\n".join(problems)


def test_no_column_is_declared_twice():
    names = [name for p in PROCESSINGS for name in p.columns]
    assert len(names) == len(set(names))


def test_retention_rules_name_real_tables_and_columns():
    problems = []
    for processing in PROCESSINGS:
        for rule in processing.rules:
            table = db.metadata.tables.get(rule.table)
            if table is None:
                problems.append(f"{rule.key}: no table {rule.table!r}")
                continue
            wanted = [rule.clock, *(c for c, _ in rule.where), *rule.anonymise]
            problems += [f"{rule.key}: no column {rule.table}.{c}" for c in wanted
                         if c not in table.columns]
            problems += [f"{rule.key}: {rule.table}.{c} must be nullable to be anonymised"
                         for c in rule.anonymise if c in table.columns
                         and not table.columns[c].nullable]
            if rule.action == register.ANONYMISE and not rule.anonymise:
                problems.append(f"{rule.key}: anonymise which columns?")
            if len(table.primary_key.columns) != 1:
                problems.append(f"{rule.key}: the job batches by a single-column primary key")
    assert not problems, "\n".join(problems)


def test_every_table_holding_personal_data_has_a_retention_rule():
    ruled = {rule.table for p in PROCESSINGS for rule in p.rules}
    tables = {name.split(".")[0] for name in tagged_columns()}
    missing = sorted(tables - ruled)
    assert not missing, (
        "These tables hold personal data but no RetentionRule names them; add one to the "
        "`rules` of their processing in tracker/domain/register.py, e.g. "
        'RetentionRule("<processing>.<what>", "<table>", "<timestamp column>", '
        "Period(months=12), \"<what, in words>\") (period None when an event, such as an "
        f"unsubscription, ends it): {missing}")


def test_rule_keys_are_unique_and_prefixed_by_their_processing():
    keys = [rule.key for p in PROCESSINGS for rule in p.rules]
    assert len(keys) == len(set(keys))
    assert all(rule.key.startswith(p.key + ".") for p in PROCESSINGS for rule in p.rules)


def test_categories_roles_and_subjects_are_known():
    for processing in PROCESSINGS:
        assert set(processing.categories) <= set(register.DATA_CATEGORIES), processing.key
        assert processing.readers <= set(ROLES), processing.key
        assert set(processing.data_subjects) <= set(register.DATA_SUBJECTS), processing.key
        assert processing.data_use.split(".")[0] in {
            "analytics", "essential", "functional", "marketing", "third_party_sharing"}


def test_roles_for_and_can_read_follow_the_register():
    assert register.roles_for("contact_form") == frozenset({"customer_relations"})
    assert register.can_read("marketing", "newsletter")
    assert not register.can_read("marketing", "contact_form")
    assert not register.can_read("analyst", "analytics")
    assert register.readable_by("admin") == ()
    with pytest.raises(register.UnknownProcessing):
        register.roles_for("contact")


@pytest.mark.parametrize(("moment", "months", "expected"), [
    (datetime(2026, 3, 31, 12), -1, datetime(2026, 2, 28, 12)),
    (datetime(2024, 3, 31), -1, datetime(2024, 2, 29)),
    (datetime(2026, 1, 15), -13, datetime(2024, 12, 15)),
    (datetime(2026, 12, 31), 1, datetime(2027, 1, 31)),
])
def test_add_months_clamps_to_the_month_end(moment, months, expected):
    assert add_months(moment, months) == expected


def test_period_resolves_its_setting():
    period = Period(months=13, setting="TRACKER_ANALYTICS_RETENTION_MONTHS")
    assert period.resolve({"TRACKER_ANALYTICS_RETENTION_MONTHS": 25}).months == 25
    assert period.cutoff(datetime(2026, 1, 10)) == datetime(2024, 12, 10)
    assert Period(days=5).after(datetime(2026, 1, 30)) == datetime(2026, 2, 4)
    assert Period(months=36).describe() == "3 years"


@pytest.mark.parametrize(("analytics", "proofs", "error"), [
    (13, 19, None), (25, 31, None), (26, 40, "1 to 25"), (0, 19, "1 to 25"),
    (13, 18, "at least 19"),
])
def test_settings_that_break_a_promise_are_refused(analytics, proofs, error):
    config = {"TRACKER_ANALYTICS_RETENTION_MONTHS": analytics,
              "TRACKER_CONSENT_PROOF_RETENTION_MONTHS": proofs}
    if error is None:
        check_settings(config)
    else:
        with pytest.raises(register.RegisterSettingsError, match=error):
            check_settings(config)


# -- generated outputs -----------------------------------------------------------------------

@pytest.fixture
def plain_app(tmp_path):
    app = create_app(app_config(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path))
    with app.app_context():
        yield app


def test_the_app_refuses_to_start_with_26_months_of_analytics(tmp_path):
    with pytest.raises(register.RegisterSettingsError, match="TRACKER_ANALYTICS_RETENTION"):
        create_app(app_config("sqlite://", tmp_path, TRACKER_ANALYTICS_RETENTION_MONTHS=26))


def test_register_page_lists_every_processing_with_its_periods(plain_app):
    client = plain_app.test_client()
    page = client.get("/privacy/register").get_data(as_text=True)
    for processing in PROCESSINGS:
        assert str(markupsafe.escape(processing.name)) in page
    assert "13 months after the visit" in page
    assert "Kept 19" not in page and "kept 19 months" in page
    assert "Set-Cookie" not in client.get("/privacy/register").headers


def test_register_page_follows_the_settings(tmp_path):
    app = create_app(app_config("sqlite://", tmp_path, TRACKER_ANALYTICS_RETENTION_MONTHS=6,
                                TRACKER_CONSENT_PROOF_RETENTION_MONTHS=12))
    data = app.test_client().get("/privacy/register.json").get_json()
    analytics = next(p for p in data["processings"] if p["key"] == "analytics")
    assert analytics["retention"].startswith("6 months after the visit")
    assert "visits, with all their pageviews: deleted after 6 months" in \
        analytics["retention_rules"]


def test_register_matches_the_policy_register_of_data_collected(plain_app):
    """The two processings the policy lists in its table, point by point."""
    data = plain_app.test_client().get("/privacy/register?format=json").get_json()
    by_key = {p["key"]: p for p in data["processings"]}
    contact, newsletter = by_key["contact_form"], by_key["newsletter"]
    policy = POLICY.read_text() if POLICY.exists() else ""
    if policy:
        assert "Shelf life: 1 year" in policy and "Data access: the marketing department" in policy
    assert contact["data_collected"] == "E-mail address and message."
    assert contact["purpose"].startswith("Customer relationship management")
    assert contact["retention"].startswith("1 year")
    assert contact["roles"] == ["customer_relations"]
    assert "customer relations department" in contact["access"]
    assert newsletter["purpose"].startswith("E-mail marketing")
    assert newsletter["retention"].startswith("The opt-in period, until you unsubscribe")
    assert newsletter["roles"] == ["marketing"]
    assert not any(p["outside_eu"] for p in data["processings"])


@pytest.mark.parametrize("fmt", ["csv", "md"])
def test_cli_exports_the_register(plain_app, fmt):
    result = plain_app.test_cli_runner().invoke(args=["register", "export", "--format", fmt])
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(result.output)))
        assert [r["name"] for r in rows] == [p.name for p in PROCESSINGS]
        contact = next(r for r in rows if r["name"] == "Contact form")
        assert contact["outside_eu"] == "no" and "customer_relations" in contact["access"]
        assert contact["columns"] == "contact_messages.email, contact_messages.message"
    else:
        assert "# Register of processing (GDPR Art. 30)" in result.output
        assert "## Contact form" in result.output
        assert "- Shelf life: 1 year after the message, then deleted." in result.output
        assert "- Is data stored or processed outside the EU: no" in result.output
