"""Render the register of processing (tracker/domain/register.py) with the configured periods:
JSON for /privacy/register.json, CSV and Markdown for the Art. 30 export."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from tracker.domain.register import DATA_CATEGORIES, PROCESSINGS, Processing
from tracker.domain.roles import ROLES

CONTROLLER = ("LAB.G (Amniotic), 30 boulevard de la République, 87200 St-Junien, France; "
              "RCS Limoges 908 329 865; contact@amniotic.studio")


def entry(processing: Processing, config: Mapping[str, Any]) -> dict[str, Any]:
    """One processing as plain data, periods resolved from the settings."""
    return {
        "key": processing.key,
        "name": processing.name,
        "data_collected": processing.collected,
        "purpose": processing.purpose,
        "data_use": processing.data_use,
        "legal_basis": processing.legal_basis,
        "data_subjects": list(processing.data_subjects),
        "data_categories": [{"key": key, "name": DATA_CATEGORIES.get(key, key)}
                            for key in processing.categories],
        "retention": processing.retention_text(config),
        "retention_rules": [rule.describe(config) for rule in processing.rules],
        "storage": processing.storage,
        "access": processing.access,
        "roles": sorted(processing.readers),
        "recipients": processing.recipients,
        "outside_eu": processing.outside_eu,
        "columns": list(processing.columns),
        "notes": processing.notes,
    }


def as_data(config: Mapping[str, Any]) -> dict[str, Any]:
    """The whole register as plain data."""
    return {
        "controller": CONTROLLER,
        "roles": ROLES,
        "processings": [entry(p, config) for p in PROCESSINGS],
    }


CSV_FIELDS = ("name", "data_collected", "purpose", "legal_basis", "data_subjects",
              "data_categories", "retention", "access", "recipients", "outside_eu", "storage",
              "columns")


def _flat(item: dict[str, Any]) -> dict[str, str]:
    row = dict(item)
    row["data_subjects"] = ", ".join(item["data_subjects"])
    row["data_categories"] = ", ".join(c["key"] for c in item["data_categories"])
    row["outside_eu"] = "yes" if item["outside_eu"] else "no"
    row["columns"] = ", ".join(item["columns"])
    row["access"] = f"{item['access']} (roles: {', '.join(item['roles'])})"
    return {name: str(row[name]) for name in CSV_FIELDS}


def to_csv(config: Mapping[str, Any]) -> str:
    """The Art. 30 record as CSV, one processing per row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for item in as_data(config)["processings"]:
        writer.writerow(_flat(item))
    return out.getvalue()


def to_markdown(config: Mapping[str, Any]) -> str:
    """The Art. 30 record as Markdown, in the policy's "Register of data collected" shape."""
    lines = ["# Register of processing (GDPR Art. 30)", "", f"Controller: {CONTROLLER}", ""]
    for item in as_data(config)["processings"]:
        lines += [
            f"## {item['name']}", "",
            f"- Data collected: {item['data_collected']}",
            f"- Objective: {item['purpose']}",
            f"- Legal basis: {item['legal_basis']}",
            f"- Data categories: {', '.join(c['key'] for c in item['data_categories'])}",
            f"- Data subjects: {', '.join(item['data_subjects'])}",
            f"- Data retention: {item['storage']}",
            f"- Shelf life: {item['retention']}",
            f"- Data access: {item['access']} (roles: {', '.join(item['roles'])})",
            f"- Recipients: {item['recipients']}",
            "- Is data stored or processed outside the EU: "
            + ("yes" if item["outside_eu"] else "no"),
            f"- Columns: {', '.join(f'`{c}`' for c in item['columns']) or 'none yet'}",
            "",
        ]
    return "\n".join(lines)
