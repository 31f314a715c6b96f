"""Rules of the contact form, the newsletter and its campaigns. No Flask, no SQLAlchemy.

Form input is validated here into small dataclasses or a `FormInvalid` carrying one error
code per field; the texts for those codes, and the exact wording of the newsletter's
checkboxes (whose SHA-256 is the opt-in proof's "form version"), live here too, so the page
shown and the proof stored cannot drift apart.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from itsdangerous import BadSignature, Signer, URLSafeSerializer

LANGS = ("fr", "en")
EMAIL_MAX = 254
MESSAGE_MAX = 5000
SUBJECT_MAX = 200
CAMPAIGN_BODY_MAX = 60_000
HONEYPOT = "website"  # a field people never see; bots that fill every input fill it too
# Where the links we e-mail point (the web layer's routes are built from these).
CONFIRM_PATH = "/forms/newsletter/confirm/"
UNSUBSCRIBE_PATH = "/u/"
OPEN_PATH = "/o/"

# A campaign recipient's life: pending -> sending -> sent | failed, committed around each
# SMTP hand-off. `sending` left behind by a crash becomes `unknown` (never re-sent blindly);
# `skipped` is someone who left the list after the campaign started.
PENDING, SENDING, SENT, FAILED, UNKNOWN, SKIPPED = (
    "pending", "sending", "sent", "failed", "unknown", "skipped")
RECIPIENT_STATES = (PENDING, SENDING, SENT, FAILED, UNKNOWN, SKIPPED)
DRAFT, CAMPAIGN_SENDING, CAMPAIGN_SENT = "draft", "sending", "sent"

TEXTS: dict[str, dict[str, str]] = {
    "fr": {
        "contact_title": "Écrivez-nous",
        "email": "Votre adresse e-mail",
        "message": "Votre message",
        "send": "Envoyer",
        "honeypot": "Laissez ce champ vide",
        "contact_privacy": "Nous utilisons votre adresse et votre message uniquement pour vous "
                           "répondre ; ils sont supprimés après un an.",
        "contact_sent_title": "Message envoyé",
        "contact_sent": "Merci, votre message nous est bien parvenu. Nous vous répondrons "
                        "par e-mail.",
        "another": "Envoyer un autre message",
        "newsletter_title": "La lettre d'Amniotic",
        "newsletter": "Je souhaite recevoir la lettre d'information d'Amniotic par e-mail "
                      "(environ une fois par mois). Je peux me désinscrire à tout moment "
                      "par le lien présent dans chaque lettre.",
        "open_tracking": "J'accepte qu'Amniotic sache si j'ouvre ses lettres (une image "
                         "invisible et propre à moi est ajoutée à chaque lettre).",
        "subscribe": "S'inscrire",
        "newsletter_sent_title": "Vérifiez votre boîte de réception",
        "newsletter_sent": "Si l'adresse est valide, un e-mail de confirmation vient de lui "
                           "être envoyé. L'inscription ne sera effective qu'après avoir "
                           "cliqué sur le lien qu'il contient.",
        "confirm_title": "Confirmer l'inscription",
        "confirm_lead": "Confirmez-vous l'inscription de {email} à la lettre d'Amniotic ?",
        "confirm_button": "Je confirme mon inscription",
        "confirmed_title": "Inscription confirmée",
        "confirmed": "Merci ! Vous recevrez nos prochaines lettres.",
        "confirm_invalid_title": "Lien non valide",
        "confirm_invalid": "Ce lien de confirmation n'est pas valide ou a expiré. "
                           "Vous pouvez vous inscrire à nouveau.",
        "unsubscribe_title": "Se désinscrire",
        "unsubscribe_lead": "Ne plus recevoir la lettre d'Amniotic à l'adresse {email} ?",
        "unsubscribe_button": "Me désinscrire",
        "unsubscribed_title": "Vous êtes désinscrit",
        "unsubscribed": "Vous ne recevrez plus aucun e-mail marketing d'Amniotic. Votre "
                        "adresse a été effacée ; seule une empreinte chiffrée est conservée "
                        "pour qu'elle ne soit jamais réinscrite sans votre accord.",
        "unsubscribe_invalid": "Ce lien de désinscription n'est pas valide.",
        "unsubscribe_test": "Ceci était un envoi de test : il n'y a rien à désinscrire.",
        "footer": "Vous recevez cette lettre car vous vous y êtes inscrit.",
        "footer_link": "Se désinscrire",
        "confirm_mail_subject": "Confirmez votre inscription à la lettre d'Amniotic",
        "confirm_mail": "Bonjour,\n\nQuelqu'un (vous, sans doute) a demandé à inscrire "
                        "cette adresse à la lettre d'Amniotic.\nPour confirmer, ouvrez ce "
                        "lien dans les {hours} heures :\n\n{url}\n\nSans confirmation, "
                        "l'adresse est effacée et vous ne recevrez rien.\n\n-- \nAmniotic\n",
    },
    "en": {
        "contact_title": "Write to us",
        "email": "Your e-mail address",
        "message": "Your message",
        "send": "Send",
        "honeypot": "Leave this field empty",
        "contact_privacy": "We use your address and message only to answer you; they are "
                           "deleted after one year.",
        "contact_sent_title": "Message sent",
        "contact_sent": "Thank you, we received your message. We will answer by e-mail.",
        "another": "Send another message",
        "newsletter_title": "Amniotic's newsletter",
        "newsletter": "I want to receive Amniotic's newsletter by e-mail (about once a "
                      "month). I can unsubscribe at any time with the link in every issue.",
        "open_tracking": "I agree that Amniotic may know whether I open its newsletters (an "
                         "invisible image unique to me is added to each issue).",
        "subscribe": "Subscribe",
        "newsletter_sent_title": "Check your inbox",
        "newsletter_sent": "If the address is valid, a confirmation e-mail has just been "
                           "sent to it. You are subscribed only once you follow its link.",
        "confirm_title": "Confirm the subscription",
        "confirm_lead": "Do you confirm the subscription of {email} to Amniotic's newsletter?",
        "confirm_button": "I confirm my subscription",
        "confirmed_title": "Subscription confirmed",
        "confirmed": "Thank you! You will receive our next newsletters.",
        "confirm_invalid_title": "Invalid link",
        "confirm_invalid": "This confirmation link is not valid or has expired. You can "
                           "subscribe again.",
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_lead": "Stop receiving Amniotic's newsletter at {email}?",
        "unsubscribe_button": "Unsubscribe me",
        "unsubscribed_title": "You are unsubscribed",
        "unsubscribed": "You will receive no more marketing e-mail from Amniotic. Your "
                        "address was erased; only a keyed hash is kept so that it is never "
                        "subscribed again without your consent.",
        "unsubscribe_invalid": "This unsubscribe link is not valid.",
        "unsubscribe_test": "This was a test message: there is nothing to unsubscribe.",
        "footer": "You receive this newsletter because you subscribed to it.",
        "footer_link": "Unsubscribe",
        "confirm_mail_subject": "Confirm your subscription to Amniotic's newsletter",
        "confirm_mail": "Hello,\n\nSomeone (probably you) asked to subscribe this address to "
                        "Amniotic's newsletter.\nTo confirm, open this link within {hours} "
                        "hours:\n\n{url}\n\nWithout confirmation the address is erased and "
                        "you will receive nothing.\n\n-- \nAmniotic\n",
    },
}

ERRORS: dict[str, dict[str, str]] = {
    "fr": {
        "required": "Ce champ est obligatoire.",
        "email_invalid": "Cette adresse e-mail n'est pas valide (exemple : nom@domaine.fr).",
        "too_long": "Ce champ est trop long ({max} caractères au plus).",
        "newsletter_required": "Cochez la case pour vous inscrire.",
        "honeypot": "Laissez vide le champ « Laissez ce champ vide ».",
        "token_missing": "Le formulaire est incomplet : rechargez la page et recommencez.",
        "token_invalid": "Le formulaire n'est pas valide : rechargez la page et recommencez.",
        "token_expired": "Le formulaire a expiré : rechargez la page et recommencez.",
        "origin": "Ce formulaire ne peut être envoyé que depuis le site d'Amniotic.",
        "rate_limited": "Trop d'envois depuis votre connexion : réessayez dans quelques "
                        "minutes.",
        "mail_failed": "L'e-mail de confirmation n'a pas pu être envoyé pour le moment : "
                       "réessayez plus tard.",
    },
    "en": {
        "required": "This field is required.",
        "email_invalid": "This e-mail address is not valid (example: name@example.org).",
        "too_long": "This field is too long (at most {max} characters).",
        "newsletter_required": "Tick the box to subscribe.",
        "honeypot": "Leave the field “Leave this field empty” empty.",
        "token_missing": "The form is incomplete: reload the page and try again.",
        "token_invalid": "The form is not valid: reload the page and try again.",
        "token_expired": "The form has expired: reload the page and try again.",
        "origin": "This form can only be sent from Amniotic's site.",
        "rate_limited": "Too many submissions from your connection: try again in a few "
                        "minutes.",
        "mail_failed": "The confirmation e-mail could not be sent right now: try again "
                       "later.",
    },
}

_EMAIL = re.compile(
    r"^[^\s@<>\"(),;:\\\[\]]{1,64}@(?:[^\s@.<>\"(),;:\\\[\]_]{1,63}\.)+"
    r"[^\s@.<>\"(),;:\\\[\]_0-9]{2,63}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def pick_lang(raw: str | None) -> str:
    """The requested language when supported, else French (the site's language)."""
    return raw if raw in LANGS else LANGS[0]


def error_text(lang: str, code: str) -> str:
    """The sentence shown for an error code."""
    limits = {"email": EMAIL_MAX, "message": MESSAGE_MAX}
    code, _, field_name = code.partition(":")
    return ERRORS[pick_lang(lang)][code].format(max=limits.get(field_name, ""))


class FormInvalid(ValueError):
    """Input that cannot be accepted: one error code per field ("_form" for the whole)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


def normalize_email(raw: str) -> str:
    """The address trimmed and lower-cased; raise FormInvalid when it is not one."""
    email = raw.strip()
    if not email:
        raise FormInvalid({"email": "required"})
    if len(email) > EMAIL_MAX:
        raise FormInvalid({"email": "too_long:email"})
    if not email.isprintable() or not _EMAIL.match(email):
        raise FormInvalid({"email": "email_invalid"})
    return email.lower()


def mask_email(email: str) -> str:
    """Enough of an address for its owner to recognise it on a page anyone could open."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


@dataclass(frozen=True, slots=True)
class ContactInput:
    email: str
    message: str


@dataclass(frozen=True, slots=True)
class NewsletterInput:
    email: str
    open_tracking: bool


def _common_checks(fields: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    errors: dict[str, str] = {}
    if fields.get(HONEYPOT, ""):
        errors[HONEYPOT] = "honeypot"
    email = None
    try:
        email = normalize_email(fields.get("email", ""))
    except FormInvalid as exc:
        errors.update(exc.errors)
    return errors, email


def parse_contact(fields: Mapping[str, str]) -> ContactInput:
    """Validate the contact form's fields."""
    errors, email = _common_checks(fields)
    # Browsers send CRLF; control characters other than newlines and tabs are dropped.
    message = _CONTROL.sub("", fields.get("message", "").replace("\r\n", "\n")).strip()
    if not message:
        errors["message"] = "required"
    elif len(message) > MESSAGE_MAX:
        errors["message"] = "too_long:message"
    if errors:
        raise FormInvalid(errors)
    assert email is not None
    return ContactInput(email=email, message=message)


def parse_newsletter(fields: Mapping[str, str]) -> NewsletterInput:
    """Validate the newsletter form: the newsletter box must be ticked, tracking is optional."""
    errors, email = _common_checks(fields)
    if fields.get("newsletter") != "yes":
        errors["newsletter"] = "newsletter_required"
    if errors:
        raise FormInvalid(errors)
    assert email is not None
    return NewsletterInput(email=email, open_tracking=fields.get("open_tracking") == "yes")


def newsletter_wording(lang: str) -> str:
    """The exact text of the opt-in form's checkboxes, as stored with every proof."""
    texts = TEXTS[pick_lang(lang)]
    return json.dumps({"lang": pick_lang(lang), "newsletter": texts["newsletter"],
                       "open_tracking": texts["open_tracking"]}, ensure_ascii=False,
                      sort_keys=True)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Public forms are embedded cross-site (an iframe on the studio's site), where the session
# cookie that Flask-WTF's CSRF token relies on is not sent; the token is therefore stateless:
# the form's name and the time it was displayed, signed with the secret key.
def issue_form_token(secret: str, form: str, now: datetime) -> str:
    """A signed token binding a form to the time it was displayed."""
    issued = int(now.replace(tzinfo=UTC).timestamp())
    return Signer(secret, salt="amniotic-form").sign(f"{form}.{issued}").decode()


def form_token_error(secret: str, token: str, form: str, now: datetime,
                     max_age: timedelta) -> str | None:
    """None when the token is ours, for this form and not too old; else an error code."""
    if not token:
        return "token_missing"
    try:
        value = Signer(secret, salt="amniotic-form").unsign(token).decode()
    except BadSignature:
        return "token_invalid"
    name, _, issued = value.rpartition(".")
    if name != form or not issued.isdigit():
        return "token_invalid"
    age = now.replace(tzinfo=UTC).timestamp() - int(issued)
    return "token_expired" if age > max_age.total_seconds() or age < -60 else None


class MailLinks:
    """Signed tokens in the links we e-mail: confirmation, unsubscription, open pixel."""

    def __init__(self, secret: str) -> None:
        self._confirm = URLSafeSerializer(secret, salt="newsletter-confirm")
        self._unsubscribe = URLSafeSerializer(secret, salt="unsubscribe")
        self._open = URLSafeSerializer(secret, salt="open-pixel")

    def confirm_token(self, nonce: str) -> str:
        return self._confirm.dumps(nonce)

    def confirm_valid(self, token: str) -> bool:
        return _loads(self._confirm, token) is not None

    def unsubscribe_token(self, recipient_id: int) -> str:
        return self._unsubscribe.dumps(recipient_id)

    def test_unsubscribe_token(self, campaign_id: int) -> str:
        return self._unsubscribe.dumps(["test", campaign_id])

    def read_unsubscribe(self, token: str) -> tuple[str, int] | None:
        """("recipient", id), ("test", campaign id) or None for a forged token."""
        value = _loads(self._unsubscribe, token)
        if isinstance(value, int) and not isinstance(value, bool):
            return "recipient", value
        if isinstance(value, list) and len(value) == 2 and value[0] == "test" \
                and isinstance(value[1], int):
            return "test", value[1]
        return None

    def open_token(self, recipient_id: int) -> str:
        return self._open.dumps(recipient_id)

    def read_open(self, token: str) -> int | None:
        value = _loads(self._open, token)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def _loads(serializer: URLSafeSerializer, token: str) -> object | None:
    try:
        return serializer.loads(token)
    except (BadSignature, UnicodeError, ValueError):
        return None


def may_receive(*, confirmed: bool, on_opposition_list: bool) -> bool:
    """Marketing goes only to confirmed subscribers who have not objected since."""
    return confirmed and not on_opposition_list


def send_blocker(status: str, edited_at: datetime, tested_at: datetime | None) -> str | None:
    """Why a campaign cannot be sent yet, or None."""
    if status != DRAFT:
        return "this campaign has already been sent"
    if tested_at is None or tested_at < edited_at:
        return "send a test to yourself after the last edit first"
    return None


@dataclass(frozen=True, slots=True)
class CampaignContent:
    subject: str
    html: str
    text: str
    lang: str


@dataclass(frozen=True, slots=True)
class Envelope:
    """Everything specific to one recipient of one message."""

    to: str
    message_id: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    pixel_url: str | None
    list_id: str
    date: datetime  # naive UTC


def compose(content: CampaignContent, envelope: Envelope, *, test: bool = False) -> EmailMessage:
    """One campaign e-mail: text and HTML, unsubscribe link and RFC 8058 headers, the pixel
    only when the envelope carries one."""
    texts = TEXTS[pick_lang(content.lang)]
    message = EmailMessage()
    message["To"] = envelope.to
    message["Subject"] = ("[TEST] " if test else "") + content.subject
    message["Message-ID"] = envelope.message_id
    message["Date"] = format_datetime(envelope.date.replace(tzinfo=UTC))
    message["List-Id"] = envelope.list_id
    message["List-Unsubscribe"] = (f"<{envelope.unsubscribe_url}>, "
                                   f"<mailto:{envelope.unsubscribe_mailto}?subject=stop>")
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(f"{content.text.rstrip()}\n\n-- \n{texts['footer']}\n"
                        f"{texts['footer_link']} : {envelope.unsubscribe_url}\n")
    footer = (f'<p style="font-size:12px;color:#666">{html.escape(texts["footer"])} '
              f'<a href="{html.escape(envelope.unsubscribe_url)}">'
              f'{html.escape(texts["footer_link"])}</a></p>')
    if envelope.pixel_url:
        footer += (f'<img src="{html.escape(envelope.pixel_url)}" width="1" height="1" '
                   'alt="" style="display:block;border:0">')
    message.add_alternative(_insert_before_body_end(content.html, footer), subtype="html")
    return message


def _insert_before_body_end(document: str, fragment: str) -> str:
    end = document.lower().rfind("</body>")
    if end < 0:
        return document + fragment
    return document[:end] + fragment + document[end:]


def scrub(error: str, email: str) -> str:
    """An SMTP error without the address it may quote, short enough to store."""
    return re.sub(re.escape(email), "<recipient>", error, flags=re.IGNORECASE)[:300]


@dataclass(frozen=True, slots=True)
class CampaignReport:
    """A campaign's figures. `sent` counts messages handed to SMTP, whatever the answer."""

    recipients: int
    pending: int
    in_flight: int
    accepted: int
    failed: int
    unknown: int
    skipped: int
    tracked: int
    unique_opens: int
    total_opens: int
    unsubscriptions: int

    @property
    def sent(self) -> int:
        return self.accepted + self.failed + self.unknown + self.in_flight

    @property
    def open_rate(self) -> float | None:
        """Unique opens over messages accepted with a pixel: only those could be counted."""
        return self.unique_opens / self.tracked if self.tracked else None

    def as_dict(self) -> dict[str, int | float | None]:
        """The figures in reading order, derived ones included."""
        return {"recipients": self.recipients, "sent": self.sent, "accepted": self.accepted,
                "failed": self.failed, "unknown": self.unknown, "pending": self.pending,
                "in_flight": self.in_flight, "skipped": self.skipped, "tracked": self.tracked,
                "unique_opens": self.unique_opens, "total_opens": self.total_opens,
                "open_rate": self.open_rate, "unsubscriptions": self.unsubscriptions}


def report_from(states: Mapping[str, int], *, tracked: int, unique_opens: int,
                total_opens: int, unsubscriptions: int) -> CampaignReport:
    """Shape recipient counts per state into a report."""
    return CampaignReport(
        recipients=sum(states.values()), pending=states.get(PENDING, 0),
        in_flight=states.get(SENDING, 0), accepted=states.get(SENT, 0),
        failed=states.get(FAILED, 0), unknown=states.get(UNKNOWN, 0),
        skipped=states.get(SKIPPED, 0), tracked=tracked, unique_opens=unique_opens,
        total_opens=total_opens, unsubscriptions=unsubscriptions)
