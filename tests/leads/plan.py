"""A synthetic lead file whose every row has a planned fate, and an independent recount of the
report that file must give (not a copy of the pipeline: a plain loop over the plan).

Rows are ok leads, leads on each list (federal, a state's list by area code or by ZIP code,
internal, litigator, opted out, several at once, on a second phone), leads with no knowable time
zone (unknown ZIP, toll-free without an address), malformed rows (numbers, e-mail, ZIP, state,
consent time), duplicates in the file (by phone, differently written, and by e-mail) and of CRM
leads, blank lines, quoted fields with commas and line breaks.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from compliance_rules.location import centroids, locate_zip
from compliance_rules.numbers import parse_number

HEADER = ["Full Name", "Phone", "Mobile", "E-mail", "Street", "City", "State", "ZIP", "Consent", "Consent Date",
          "Policy"]
MAPPING = ("name=Full Name,phone=Phone,phone=Mobile,email=E-mail,address=Street,city=City,state=State,zip=ZIP,"
           "consent=Consent,consent_at=Consent Date,custom.policy=Policy")
# (kind, share of rows)
KINDS = [
    ("ok", 0.62), ("federal", 0.08), ("state_tx", 0.02), ("state_fl_by_zip", 0.01), ("tx_clean", 0.02),
    ("internal", 0.01), ("litigator", 0.01), ("optout", 0.01), ("federal_internal", 0.005),
    ("mobile_on_federal", 0.01), ("unknown_zip", 0.015), ("tollfree_no_address", 0.005),
    ("tollfree_with_state", 0.003), ("bad_phone", 0.007), ("undialable", 0.003), ("no_phone", 0.002),
    ("bad_email", 0.005), ("bad_zip", 0.003), ("bad_state", 0.002), ("bad_consent", 0.002),
    ("dup_file_phone", 0.02), ("dup_file_email", 0.005), ("dup_crm_phone", 0.01), ("dup_crm_email", 0.003),
    ("ok_quoted", 0.01), ("ok_zip_variants", 0.01),
]
INVALID_NUMBER_KINDS = {"bad_phone", "undialable", "no_phone"}
INVALID_FIELD_KINDS = {"bad_email", "bad_zip", "bad_state", "bad_consent"}


@dataclass
class PlannedRow:
    kind: str
    cells: list[str]
    phones: list[int] = field(default_factory=list)  # the valid numbers, as national integers
    email: str | None = None
    reasons: set[str] = field(default_factory=set)  # list and location reasons, if it is scrubbed
    consent: bool = False


@dataclass
class LeadFile:
    rows: list[PlannedRow]
    federal: set[int]
    states: dict[str, set[int]]  # state -> numbers on its list
    internal: set[int]
    litigator: set[int]
    optout: set[int]
    crm_phones: set[int]
    crm_emails: set[str]

    def write(self, path: Path, *, blank_every: int = 997) -> list[int]:
        """Write the file; returns the physical line on which each row ends."""
        ends = []
        line = 1  # the header
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for index, row in enumerate(self.rows):
                writer.writerow(row.cells)
                line += 1 + sum(cell.count("\n") for cell in row.cells)
                ends.append(line)
                if index % blank_every == blank_every - 1:
                    handle.write("\r\n")  # a blank line is not a row
                    line += 1
        return ends

    def recount(self) -> list[tuple[str, frozenset[str], int | None]]:
        """(status, reasons, the earlier row it duplicates (1-based) or None) for every row."""
        claimed_phones: dict[int, int] = {}
        claimed_emails: dict[str, int] = {}
        result: list[tuple[str, frozenset[str], int | None]] = []
        for number, row in enumerate(self.rows, start=1):
            if row.kind in INVALID_NUMBER_KINDS:
                result.append(("invalid", frozenset({"invalid_number"}), None))
                continue
            if row.kind in INVALID_FIELD_KINDS:
                result.append(("invalid", frozenset({"invalid_field"}), None))
                continue
            if any(p in self.crm_phones for p in row.phones) or (row.email and row.email in self.crm_emails):
                result.append(("duplicate", frozenset({"duplicate_in_crm"}), None))
                continue
            earlier = [claimed_phones[p] for p in row.phones if p in claimed_phones]
            if row.email and row.email in claimed_emails:
                earlier.append(claimed_emails[row.email])
            if earlier:
                result.append(("duplicate", frozenset({"duplicate_in_file"}), min(earlier)))
                continue
            for p in row.phones:
                claimed_phones[p] = number
            if row.email:
                claimed_emails[row.email] = number
            result.append(("rejected" if row.reasons else "accepted", frozenset(row.reasons), None))
        return result


class _Numbers:
    """Distinct valid numbers per area code (checked with the gate's own parser)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[int] = set()

    def take(self, npa: int) -> int:
        while True:
            number = npa * 10**7 + self.rng.randint(2_000_000, 9_999_999)
            if number in self.used:
                continue
            info = parse_number(f"+1{number}")
            if info.ok and info.geographic:
                self.used.add(number)
                return number


def _zips(state: str) -> list[str]:
    return [code for code, (zip_state, _, _, _) in sorted(centroids()[1].items())
            if zip_state == state and (found := locate_zip(code)) is not None and found.zone is not None]


def _spell(number: int, rng: random.Random) -> str:
    text = str(number)
    a, b, c = text[:3], text[3:6], text[6:]
    return rng.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a} {b} {c}", text, f"1-{a}-{b}-{c}", f"{a}.{b}.{c}",
                       f"{a}-{b}-{c} x12"])


def make_lead_file(rows: int, seed: int = 7) -> LeadFile:
    rng = random.Random(seed)
    numbers = _Numbers(rng)
    ny_zips, fl_zips, tx_zips = _zips("NY"), _zips("FL"), _zips("TX")
    ny_npas, tx_npas = [212, 718, 917, 516, 631], [214, 469, 972, 713]
    plan = LeadFile([], set(), {"TX": set(), "FL": set()}, set(), set(), set(), set(), set())
    crm = [numbers.take(rng.choice(ny_npas)) for _ in range(500)]
    plan.crm_phones = set(crm)
    plan.crm_emails = {f"crm{i}@example.com" for i in range(200)}
    claimable: list[PlannedRow] = []  # rows that will claim their phone and e-mail
    kinds = [kind for kind, _ in KINDS]
    weights = [share for _, share in KINDS]
    for index in range(rows):
        kind = rng.choices(kinds, weights)[0]
        if kind.startswith("dup_file") and not claimable:
            kind = "ok"
        name = rng.choice([f"Dana Q. Smith{index}", f"Smith{index}, Dana", f"Cher{index}"])
        email = f"lead{index}@Example.com"
        phone = numbers.take(rng.choice(ny_npas))
        zip_code = rng.choice(ny_zips)
        state = rng.choice(["NY", "ny", ""])
        mobile = ""
        consent, consent_at = f"https://forms.example.com/{index}", rng.choice(["2026-10-01T15:30:00Z", "10/02/2026"])
        if rng.random() < 0.2:
            consent = consent_at = ""
        street, city = f"{index} Main St", "Albany"
        row = PlannedRow(kind, [], [phone], email.lower())
        if kind == "federal":
            plan.federal.add(phone)
            row.reasons = {"dnc_federal"}
        elif kind in ("state_tx", "tx_clean"):
            phone = numbers.take(rng.choice(tx_npas))
            row.phones = [phone]
            zip_code, state = rng.choice(tx_zips), "TX"
            if kind == "state_tx":
                plan.states["TX"].add(phone)
                row.reasons = {"dnc_state"}
        elif kind == "state_fl_by_zip":
            zip_code, state = rng.choice(fl_zips), ""
            plan.states["FL"].add(phone)
            row.reasons = {"dnc_state"}
        elif kind in ("internal", "litigator", "optout"):
            getattr(plan, kind).add(phone)
            row.reasons = {"dnc_internal" if kind == "internal" else "opted_out" if kind == "optout" else "litigator"}
        elif kind == "federal_internal":
            plan.federal.add(phone)
            plan.internal.add(phone)
            row.reasons = {"dnc_federal", "dnc_internal"}
        elif kind == "mobile_on_federal":
            second = numbers.take(rng.choice(ny_npas))
            mobile = _spell(second, rng)
            row.phones = [phone, second]
            plan.federal.add(second)
            row.reasons = {"dnc_federal"}
        elif kind == "unknown_zip":
            zip_code = rng.choice(["99999", "00001", "09999"])
            row.reasons = {"unknown_location"}
        elif kind in ("tollfree_no_address", "tollfree_with_state"):
            phone = 8005550000 + index % 10_000
            while phone in numbers.used:
                phone += 1
            numbers.used.add(phone)
            row.phones = [phone]
            zip_code = ""
            state = "" if kind == "tollfree_no_address" else "NY"
            if kind == "tollfree_no_address":
                row.reasons = {"unknown_location"}
        elif kind == "dup_file_phone":
            earlier = rng.choice(claimable)
            phone = earlier.phones[0]
            row.phones = [phone]
        elif kind == "dup_file_email":
            earlier = rng.choice(claimable)
            email = (earlier.email or "").upper()
            row.email = earlier.email
        elif kind == "dup_crm_phone":
            phone = rng.choice(crm)
            row.phones = [phone]
        elif kind == "dup_crm_email":
            email = rng.choice(sorted(plan.crm_emails))
            row.email = email
        elif kind == "ok_quoted":
            street, city = f"{index} Main St, Apt 4\nBuilding \"B\"", "New York, NY"
        elif kind == "ok_zip_variants":
            zip_code = rng.choice(["6390", "12345-6789", "123456789"])  # padded, ZIP+4 forms
        phone_text = _spell(phone, rng)
        if kind == "bad_phone":
            phone_text = rng.choice(["555-01", "+44 20 7946 0958", "not a number"])
            row.phones = []
        elif kind == "undialable":
            phone_text = rng.choice(["900-555-0142", "+1 613 555 0142"])  # premium rate; Canada
            row.phones = []
        elif kind == "no_phone":
            phone_text = ""
            row.phones = []
        elif kind == "bad_email":
            email = "not-an-email"
        elif kind == "bad_zip":
            zip_code = "ABCDE"
        elif kind == "bad_state":
            state = "ZZ"
        elif kind == "bad_consent":
            consent, consent_at = "https://forms.example.com/x", "yesterday"
        row.consent = bool(consent_at)
        row.cells = [name, phone_text, mobile, email, street, city, state, zip_code, consent, consent_at,
                     rng.choice(["medigap", "", "final expense"])]
        plan.rows.append(row)
        if kind not in INVALID_NUMBER_KINDS | INVALID_FIELD_KINDS and not kind.startswith("dup_"):
            claimable.append(row)
    return plan
