"""Staff roles: personal, task-based access rights, as the privacy policy promises."""

from __future__ import annotations

ADMIN = "admin"
ANALYST = "analyst"
CUSTOMER_RELATIONS = "customer_relations"
MARKETING = "marketing"
DPO = "dpo"

ROLES: dict[str, str] = {
    ADMIN: "Manages staff accounts and settings; sees aggregate reports.",
    ANALYST: "Reads aggregate website reports only.",
    CUSTOMER_RELATIONS: "Reads and answers contact-form messages.",
    MARKETING: "Manages the newsletter and its campaigns; sees aggregate reports.",
    DPO: "Data protection officer: handles data-subject and authorities' requests.",
}

# Aggregate reports identify nobody, so every role whose task involves the site may read them.
REPORT_READERS = frozenset({ADMIN, ANALYST, MARKETING, DPO})

# Accounts that can reach the most personal data or change others' rights need a second factor.
SECOND_FACTOR_ROLES = frozenset({ADMIN, DPO})
