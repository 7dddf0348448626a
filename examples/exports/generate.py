"""Write the demo exports of "Marginalia Books & Coffee", a made-up bookshop-café chain.

Everything here is synthetic (names, ids, emails on example.* domains, 555-01xx phones): no
real person's data. The files use the real export headers (``reference/shopify-and-pos.md``
§2) and the quirks of real exports: Excel-guarded ids and phones, bad phones and emails,
blank Customer IDs on anonymous café sales, refunds as negative rows, one Shopify row per
line item with order fields on the first row only.

The chain has two stores, Riverside and Old Town, selling in Square, plus a Shopify web shop
whose POS also runs at both stores. "Today" for the demo is 2026-11-01; the customers are
built as archetypes (regulars, new, lapsed, fading regulars, big spenders, browsers) so every
demo segment has members on that date.

Run ``python examples/exports/generate.py`` to rewrite the CSVs; the seed makes the output
identical on every run. Standard library only.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import string
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TODAY = dt.date(2026, 11, 1)
START = dt.date(2026, 1, 3)
TZ = zoneinfo.ZoneInfo("America/Los_Angeles")
LOCATIONS = ("Riverside", "Old Town")

SQUARE_CUSTOMER_HEADER = [
    "Reference ID", "First Name", "Last Name", "Email Address", "Phone Number", "Nickname",
    "Company Name", "Street Address 1", "Street Address 2", "City", "State", "Postal Code",
    "Birthday", "Memo", "Square Customer ID", "Creation Source", "First Visit", "Last Visit",
    "Transaction Count", "Lifetime Spend", "Email Subscription Status", "Instant Profile",
]
SQUARE_ITEMS_HEADER = [
    "Date", "Time", "Time Zone", "Category", "Item", "Qty", "Price Point Name", "SKU",
    "Modifiers Applied", "Gross Sales", "Discounts", "Net Sales", "Tax", "Transaction ID",
    "Payment ID", "Device Name", "Notes", "Details", "Event Type", "Location", "Dining Option",
    "Customer ID", "Customer Name", "Customer Reference ID", "Unit", "Count", "GTIN",
    "Itemization Type", "Commission", "Employee", "Fulfillment Note", "Channel", "Token",
    "Card Brand", "PAN Suffix",
]
SHOPIFY_CUSTOMER_HEADER = [
    "Customer ID", "First Name", "Last Name", "Email", "Accepts Email Marketing",
    "Default Address Company", "Default Address Address1", "Default Address Address2",
    "Default Address City", "Default Address Province Code", "Default Address Country Code",
    "Default Address Zip", "Default Address Phone", "Phone", "Accepts SMS Marketing",
    "Total Spent", "Total Orders", "Note", "Tax Exempt", "Tags",
    # A newer store's metafield column: the label before the key is the shop's own.
    "Birthday (customer.metafields.facts.birth_date)",
]
SHOPIFY_ORDER_HEADER = [
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at",
    "Accepts Marketing", "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code",
    "Discount Amount", "Shipping Method", "Created at", "Lineitem quantity", "Lineitem name",
    "Lineitem price", "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping",
    "Lineitem taxable", "Lineitem fulfillment status", "Billing Name", "Billing Street",
    "Billing Address1", "Billing Address2", "Billing Company", "Billing City", "Billing Zip",
    "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City",
    "Shipping Zip", "Shipping Province", "Shipping Country", "Shipping Phone", "Notes",
    "Note Attributes", "Cancelled at", "Payment Method", "Payment Reference", "Refunded Amount",
    "Vendor", "Outstanding Balance", "Employee", "Location", "Device ID", "Id", "Tags",
    "Risk Level", "Source", "Lineitem discount", "Tax 1 Name", "Tax 1 Value", "Tax 2 Name",
    "Tax 2 Value", "Tax 3 Name", "Tax 3 Value", "Tax 4 Name", "Tax 4 Value", "Tax 5 Name",
    "Tax 5 Value", "Phone", "Receipt Number", "Duties", "Billing Province Name",
    "Shipping Province Name", "Payment ID", "Payment Terms Name", "Next Payment Due At",
    "Payment References",
]

FIRST_NAMES = [
    "Ada", "Bea", "Cal", "Dara", "Eli", "Fern", "Gus", "Hana", "Ivo", "June", "Kit", "Lena",
    "Milo", "Nora", "Otto", "Pia", "Quinn", "Rosa", "Sol", "Tess", "Uma", "Vic", "Wren", "Xavi",
    "Yara", "Zane", "Amara", "Bruno", "Cleo", "Dev", "Esme", "Felix", "Greta", "Hugo", "Iris",
    "Jonah", "Kaia", "Luca", "Maeve", "Nico", "Olive", "Pablo", "Ruth", "Silas", "Thea",
    "Ugo", "Vera", "Wade", "Yusuf", "Zora", "Ines", "Marta", "Ravi", "Sun", "Aiko", "Femi",
]
LAST_NAMES = [
    "Abernathy", "Bellweather", "Castellanos", "Dunmore", "Eriksen", "Fairweather", "Galloway",
    "Hollis", "Iwasaki", "Jablonski", "Kowalczyk", "Lindqvist", "Moreau", "Nakamura", "Okafor",
    "Pettersen", "Quintero", "Rasmussen", "Sandoval", "Thornbury", "Underhill", "Valdez",
    "Whitcombe", "Yilmaz", "Zielinski", "Ashdown", "Brightwater", "Calloway", "Delacroix",
    "Ellsworth", "Fontaine", "Greenhalgh", "Haverford", "Ingram", "Kettering", "Larkspur",
]
CITIES = [
    ("Portland", "OR", "97214"), ("Portland", "OR", "97202"), ("Portland", "OR", "97212"),
    ("Beaverton", "OR", "97005"), ("Lake Oswego", "OR", "97034"), ("Gresham", "OR", "97030"),
    ("Milwaukie", "OR", "97222"), ("Vancouver", "WA", "98660"),
]
STREETS = ["Alder St", "Belmont St", "Clinton St", "Division St", "Hawthorne Blvd",
           "Killingsworth St", "Mississippi Ave", "Salmon St", "Taylor St", "Yamhill St"]
EMAIL_DOMAINS = ["example.com", "example.net", "example.org"]

# Square catalog: (category, item, price, sku). Books have no tax in Oregon.
SQUARE_CATALOG = {
    "Mystery": [("The Lighthouse Ledger", 17.99, "MYS-1001"),
                ("Murder at Marrow Lane", 16.50, "MYS-1002"),
                ("A Quiet Poison", 18.99, "MYS-1003"),
                ("The Ninth Footnote", 27.00, "MYS-1004")],
    "Romance": [("Letters to the Harbor", 15.99, "ROM-2001"),
                ("Summer of Second Chances", 14.99, "ROM-2002"),
                ("The Cartographer's Heart", 16.99, "ROM-2003")],
    "Science Fiction": [("Orbit of Ash", 19.99, "SF-3001"),
                        ("The Glass Meridian", 28.00, "SF-3002"),
                        ("Signal from Kepler Deep", 17.50, "SF-3003")],
    "Children's": [("Otter Learns to Swim", 12.99, "KID-4001"),
                   ("The Moon Has a Cat", 9.99, "KID-4002"),
                   ("Tiny Dragon, Big Sneeze", 14.99, "KID-4003")],
    "Cookbooks": [("Salt, Smoke & Cedar", 34.99, "CK-5001"),
                  ("Weeknight Noodles", 26.00, "CK-5002")],
    "Coffee": [("Latte", 5.25, "CAF-6001"), ("Drip Coffee", 3.50, "CAF-6002"),
               ("Cappuccino", 4.75, "CAF-6003"), ("Chai Latte", 5.00, "CAF-6004")],
    "Pastry": [("Almond Croissant", 4.50, "PAS-7001"), ("Marionberry Scone", 3.95, "PAS-7002"),
               ("Morning Bun", 4.25, "PAS-7003")],
}
BOOK_CATEGORIES = ["Mystery", "Romance", "Science Fiction", "Children's", "Cookbooks"]

# Shopify catalog: (title, price, sku, vendor).
SHOPIFY_CATALOG = [
    ("The Lighthouse Ledger - Hardcover", 27.99, "MYS-1001-HC", "Lantern House Press"),
    ("A Quiet Poison", 18.99, "MYS-1003", "Lantern House Press"),
    ("Letters to the Harbor", 15.99, "ROM-2001", "Bramble & Quill"),
    ("Orbit of Ash", 19.99, "SF-3001", "Gullfeather Books"),
    ("The Glass Meridian - Signed", 32.00, "SF-3002-S", "Gullfeather Books"),
    ("Otter Learns to Swim", 12.99, "KID-4001", "Bramble & Quill"),
    ("Salt, Smoke & Cedar", 34.99, "CK-5001", "Cedar Table Books"),
    ("House Blend Beans 12oz", 16.00, "BEAN-12", "Marginalia Roasters"),
    ("Decaf Beans 12oz", 17.00, "BEAN-D12", "Marginalia Roasters"),
    ("Book Club Tote", 22.00, "TOTE-01", "Marginalia Goods"),
    ("Gift Card", 50.00, "GIFT-50", "Marginalia Books & Coffee"),
]
BOOK_CLUB_PICK = ("The Lighthouse Ledger - Hardcover", 27.99, "MYS-1001-HC",
                  "Lantern House Press")


@dataclass
class Person:
    """One made-up customer and what they are in the demo."""

    first: str
    last: str
    email: str
    phone: str
    city: tuple[str, str, str]
    street: str
    birthday: dt.date | None
    archetype: str
    square: bool
    shopify: bool
    square_id: str = ""
    shopify_id: str = ""
    reference_id: str = ""
    #: Purchase dates, each with the channel it happens in.
    visits: list[tuple[dt.date, str]] = field(default_factory=list)


class Generator:
    """Builds the people, their purchases and the four exports from one seeded RNG."""

    def __init__(self, seed: int = 20261101):
        self.rng = random.Random(seed)
        self.used_names: set[tuple[str, str]] = set()
        self.phone_numbers = iter(self.rng.sample(range(100, 200), 100))

    # -- people --------------------------------------------------------------------------------

    def _id(self, length: int, alphabet: str = string.ascii_uppercase + string.digits) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def _name(self) -> tuple[str, str]:
        while True:
            pair = (self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES))
            if pair not in self.used_names:
                self.used_names.add(pair)
                return pair

    def _phone(self) -> str:
        # 555-0100 … 555-0199 is reserved for fiction, yet parses as a valid US number.
        area = self.rng.choice(["503", "971", "360"])
        return f"+1{area}555{next(self.phone_numbers):04d}"

    def person(self, archetype: str, *, square: bool, shopify: bool,
               born: tuple[int, int] = (1955, 2004)) -> Person:
        first, last = self._name()
        email = f"{first}.{last}@{self.rng.choice(EMAIL_DOMAINS)}".lower()
        birthday = None
        if self.rng.random() < 0.7:
            birthday = dt.date(self.rng.randint(*born), self.rng.randint(1, 12),
                               self.rng.randint(1, 28))
        p = Person(first, last, email, self._phone(), self.rng.choice(CITIES),
                   f"{self.rng.randint(100, 9999)} SE {self.rng.choice(STREETS)}", birthday,
                   archetype, square, shopify)
        if square:
            p.square_id = self._id(26)
            p.reference_id = f"MBC-{self.rng.randint(1000, 9999)}"
        if shopify:
            p.shopify_id = str(self.rng.randint(7_300_000_000_000, 7_399_999_999_999))
        return p

    def _channel(self, p: Person) -> str:
        options = (["square"] if p.square else []) + (["web", "pos"] if p.shopify else [])
        return self.rng.choice(options)

    def _day(self, start: dt.date, end: dt.date) -> dt.date:
        return start + dt.timedelta(days=self.rng.randint(0, (end - start).days))

    def plan_visits(self, p: Person) -> None:
        """Purchase dates by archetype, so each demo segment has members on 2026-11-01."""
        rng = self.rng
        late_oct = TODAY - dt.timedelta(days=2)
        if p.archetype == "regular":
            day = self._day(START, START + dt.timedelta(days=30))
            while day < late_oct:
                p.visits.append((day, self._channel(p)))
                day += dt.timedelta(days=rng.randint(35, 80))
        elif p.archetype == "fading":
            # Came every two weeks or so until late spring, then stopped: > 2x their usual
            # gap and over 60 days since the last visit.
            day = self._day(START, START + dt.timedelta(days=14))
            stop = dt.date(2026, rng.randint(5, 6), rng.randint(1, 28))
            while day < stop:
                p.visits.append((day, self._channel(p)))
                day += dt.timedelta(days=rng.randint(12, 24))
        elif p.archetype == "lapsed":
            for _ in range(rng.randint(1, 2)):
                p.visits.append((self._day(START, dt.date(2026, 2, 25)), self._channel(p)))
        elif p.archetype == "new":
            p.visits.append((self._day(TODAY - dt.timedelta(days=27), late_oct),
                             self._channel(p)))
        elif p.archetype == "occasional":
            for _ in range(rng.randint(2, 3)):
                p.visits.append((self._day(START, late_oct), self._channel(p)))
        elif p.archetype == "big":
            for _ in range(rng.randint(3, 6)):
                p.visits.append((self._day(START, dt.date(2026, 9, 20)), self._channel(p)))
        p.visits.sort()

    def people(self) -> list[Person]:
        """60 Square directory customers and 40 Shopify customers, 12 of them in both."""
        mix = (
            [("regular", 13), ("fading", 4), ("lapsed", 8), ("new", 7), ("occasional", 12),
             ("browser", 4)]
        )
        people: list[Person] = []
        # Square only: 48.
        for archetype, count in mix:
            for _ in range(count):
                people.append(self.person(archetype, square=True, shopify=False))
        # In both systems: 12 (identity resolution merges them by email or phone).
        for archetype in ["regular"] * 5 + ["fading"] * 2 + ["occasional"] * 3 + ["new"] * 2:
            people.append(self.person(archetype, square=True, shopify=True))
        # Shopify only: 27.
        for archetype, count in [("regular", 9), ("lapsed", 5), ("new", 5), ("occasional", 5),
                                 ("fading", 2), ("browser", 1)]:
            for _ in range(count):
                people.append(self.person(archetype, square=False, shopify=True))
        # The two big spenders of October are over 40 with known birthdays, and in the top
        # 10 % by spend: a school librarian (Square) and a book club organiser (both).
        librarian = self.person("big", square=True, shopify=False, born=(1968, 1975))
        organiser = self.person("big", square=True, shopify=True, born=(1960, 1972))
        for big in (librarian, organiser):
            big.birthday = big.birthday or dt.date(1971, 3, 14)
        # They replace two Square-only browsers, keeping the directory at 60 customers.
        browsers = [p for p in people if p.archetype == "browser" and not p.shopify]
        for gone in browsers[:2]:
            people.remove(gone)
        people += [librarian, organiser]
        for p in people:
            self.plan_visits(p)
        self.librarian, self.organiser = librarian, organiser
        return people


def money(value: float) -> str:
    """Square's money format: ``$1,149.00``, ``-$45.00``."""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def local_dt(day: dt.date, rng: random.Random, open_hour: int = 7) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, rng.randint(open_hour, 19),
                       rng.randint(0, 59), rng.randint(0, 59), tzinfo=TZ)


class SquareItems:
    """Square's item sales export: one row per item, joined by Transaction ID."""

    def __init__(self, gen: Generator):
        self.gen = gen
        self.rows: list[dict[str, str]] = []
        self.spend: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.first_visit: dict[str, dt.date] = {}
        self.last_visit: dict[str, dt.date] = {}

    def transaction(self, day: dt.date, customer: Person | None,
                    items: list[tuple[str, str, float, str, int]],
                    location: str | None = None) -> list[dict[str, str]]:
        rng = self.gen.rng
        when = local_dt(day, rng)
        txn, payment = self.gen._id(22, string.ascii_letters + string.digits), self.gen._id(22)
        location = location or rng.choice(LOCATIONS)
        employee = rng.choice(["Marisol", "Teddy", "Priya", "Jonas"])
        card = rng.random() < 0.8
        rows = []
        for category, item, price, sku, qty in items:
            gross = round(price * qty, 2)
            discount = round(gross * 0.1, 2) if customer and rng.random() < 0.15 else 0.0
            net = round(gross - discount, 2)
            cafe = category in ("Coffee", "Pastry")
            rows.append({
                "Date": when.strftime("%Y-%m-%d"),
                "Time": when.strftime("%H:%M:%S"),
                "Time Zone": "Pacific Time (US & Canada)",
                "Category": category,
                "Item": item,
                "Qty": f"{qty:.1f}",
                "Price Point Name": "Regular",
                "SKU": sku,
                "Modifiers Applied": rng.choice(["", "Oat Milk", "Extra Shot"]) if cafe else "",
                "Gross Sales": money(gross),
                "Discounts": money(-discount),
                "Net Sales": money(net),
                "Tax": money(0.0),
                "Transaction ID": txn,
                "Payment ID": payment,
                "Device Name": f"{location} Counter",
                "Notes": "",
                "Details": f"https://app.squareup.example/dashboard/sales/transactions/{txn}",
                "Event Type": "Payment",
                "Location": location,
                "Dining Option": rng.choice(["For Here", "To Go"]) if cafe else "",
                "Customer ID": customer.square_id if customer else "",
                "Customer Name": f"{customer.first} {customer.last}" if customer else "",
                "Customer Reference ID": customer.reference_id if customer else "",
                "Unit": "",
                "Count": "",
                "GTIN": "",
                "Itemization Type": "Physical Good",
                "Commission": money(0.0),
                "Employee": employee,
                "Fulfillment Note": "",
                "Channel": location,
                "Token": "",
                "Card Brand": rng.choice(["Visa", "Mastercard", "American Express"]) if card
                else "",
                "PAN Suffix": f"{rng.randint(0, 9999):04d}" if card else "",
            })
            if customer:
                self.spend[customer.square_id] = self.spend.get(customer.square_id, 0) + net
        if customer:
            sid = customer.square_id
            self.count[sid] = self.count.get(sid, 0) + 1
            self.first_visit.setdefault(sid, day)
            self.last_visit[sid] = day
        self.rows += rows
        return rows

    def basket(self, books: int = 1, cafe: bool = True) -> list[tuple[str, str, float, str, int]]:
        rng = self.gen.rng
        items = []
        for _ in range(books):
            category = rng.choice(BOOK_CATEGORIES + ["Mystery"])  # the shop's best seller
            item, price, sku = rng.choice(SQUARE_CATALOG[category])
            items.append((category, item, price, sku, 1))
        if cafe or not items:
            for category in rng.sample(["Coffee", "Pastry"], rng.randint(1, 2)):
                item, price, sku = rng.choice(SQUARE_CATALOG[category])
                items.append((category, item, price, sku, 1))
        return items

    def refund(self, rows: list[dict[str, str]], days_later: int) -> None:
        """Refund the first item of a sale: same Transaction ID, negative amounts."""
        original = rows[0]
        day = dt.date.fromisoformat(original["Date"]) + dt.timedelta(days=days_later)
        row = dict(original)
        row.update({
            "Date": day.isoformat(),
            "Time": local_dt(day, self.gen.rng).strftime("%H:%M:%S"),
            "Qty": "-1.0",
            "Gross Sales": "-" + original["Gross Sales"],
            "Discounts": original["Discounts"].replace("-", ""),
            "Net Sales": "-" + original["Net Sales"],
            "Event Type": "Refund",
            "Payment ID": self.gen._id(22),
            "Modifiers Applied": "",
        })
        net = -float(original["Net Sales"].replace("$", "").replace(",", ""))
        if row["Customer ID"]:
            self.spend[row["Customer ID"]] += net
        self.rows.append(row)


class ShopifyOrders:
    """Shopify's orders export: one row per line item, order fields on the first row."""

    def __init__(self, gen: Generator):
        self.gen = gen
        self.rows: list[dict[str, str]] = []
        self.number = 1001
        self.spend: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def order(self, day: dt.date, p: Person, channel: str,
              lines: list[tuple[str, float, str, str, int]], *,
              cancelled: bool = False, refunded: float = 0.0) -> None:
        rng = self.gen.rng
        when = local_dt(day, rng, open_hour=8)
        name = f"#{self.number}"
        self.number += 1
        subtotal = round(sum(price * qty for _, price, _, _, qty in lines), 2)
        shipping = 0.0 if channel == "pos" or subtotal >= 50 else 6.95
        total = round(subtotal + shipping, 2)
        status = "paid"
        if cancelled:
            status = "voided"
        elif refunded:
            status = "refunded" if refunded >= total else "partially_refunded"
        location = rng.choice(LOCATIONS) if channel == "pos" else ""
        city, province, zip_code = p.city
        stamp = when.strftime("%Y-%m-%d %H:%M:%S %z")
        for i, (title, price, sku, vendor, qty) in enumerate(lines):
            row = dict.fromkeys(SHOPIFY_ORDER_HEADER, "")
            row.update({
                "Name": name,
                "Email": p.email,
                "Lineitem quantity": str(qty),
                "Lineitem name": title,
                "Lineitem price": f"{price:.2f}",
                "Lineitem sku": sku,
                "Lineitem requires shipping": "false" if channel == "pos" else "true",
                "Lineitem taxable": "false",
                "Lineitem fulfillment status": "fulfilled",
                "Vendor": vendor,
                "Lineitem discount": "0.00",
            })
            if i == 0:
                row.update({
                    "Financial Status": status,
                    "Paid at": "" if cancelled else stamp,
                    "Fulfillment Status": "unfulfilled" if cancelled else "fulfilled",
                    "Fulfilled at": "" if cancelled else stamp,
                    "Accepts Marketing": "yes" if rng.random() < 0.5 else "no",
                    "Currency": "USD",
                    "Subtotal": f"{subtotal:.2f}",
                    "Shipping": f"{shipping:.2f}",
                    "Taxes": "0.00",
                    "Total": f"{total:.2f}",
                    "Discount Amount": "0.00",
                    "Shipping Method": "" if channel == "pos" else "Standard",
                    "Created at": stamp,
                    "Billing Name": f"{p.first} {p.last}",
                    "Billing Street": p.street,
                    "Billing Address1": p.street,
                    "Billing City": city,
                    "Billing Zip": zip_code,
                    "Billing Province": province,
                    "Billing Country": "US",
                    "Billing Phone": p.phone if rng.random() < 0.5 else "",
                    "Cancelled at": when.strftime("%Y-%m-%d %H:%M:%S %z") if cancelled else "",
                    "Payment Method": "Shopify Payments",
                    "Refunded Amount": f"{refunded:.2f}",
                    "Outstanding Balance": "0.00",
                    "Employee": rng.choice(["Marisol", "Teddy"]) if channel == "pos" else "",
                    "Location": location,
                    "Id": str(5_800_000_000_000 + self.number * 7919),
                    "Risk Level": "Low",
                    "Source": channel,
                    "Billing Province Name": "Oregon" if province == "OR" else "Washington",
                    "Payment ID": self.gen._id(20, string.ascii_letters + string.digits),
                })
            self.rows.append(row)
        if not cancelled:
            self.spend[p.email] = self.spend.get(p.email, 0) + total - refunded
            self.count[p.email] = self.count.get(p.email, 0) + 1

    def basket(self) -> list[tuple[str, float, str, str, int]]:
        rng = self.gen.rng
        picks = rng.sample(SHOPIFY_CATALOG, rng.choice([1, 1, 2, 2, 3, 4]))
        return [(t, price, sku, vendor, rng.choice([1, 1, 1, 2]))
                for t, price, sku, vendor in picks]


def square_customer_rows(gen: Generator, people: list[Person], items: SquareItems) -> list[dict]:
    rng = gen.rng
    rows = []
    for n, p in enumerate(x for x in people if x.square):
        city, state, zip_code = p.city
        local = p.phone[2:]
        # The phone formats of a real directory, Excel's guard included.
        phone = rng.choice([f"'{p.phone}", local, f"1{local}",
                            f"({local[:3]}) {local[3:6]}-{local[6:]}"])
        email = p.email
        if n % 13 == 5:
            email = email.split("@")[0] + "@"          # bad email: no domain
        elif n % 17 == 3:
            email = email.replace("@", " at ")         # bad email: spelled out
        elif n % 11 == 2:
            email = f" {p.first}.{p.last}@{p.email.split('@')[1]} "  # case and spaces
        if n % 19 == 7:
            phone = "555-01"                           # bad phone: too short
        status = rng.choice(["subscribed"] * 4 + ["unsubscribed", "bounced", "", "unknown"])
        sid = p.square_id
        rows.append({
            "Reference ID": p.reference_id,
            "First Name": p.first,
            "Last Name": p.last,
            "Email Address": email,
            "Phone Number": phone,
            "Nickname": "",
            "Company Name": "Riverbend Elementary" if p is gen.librarian else "",
            "Street Address 1": p.street,
            "Street Address 2": "",
            "City": city,
            "State": state,
            "Postal Code": f"'{zip_code}" if n % 4 == 0 else zip_code,
            "Birthday": p.birthday.isoformat() if p.birthday else "",
            "Memo": "Orders for the school library" if p is gen.librarian else "",
            "Square Customer ID": sid,
            "Creation Source": rng.choice(["Directory", "Instant Profile", "Loyalty",
                                           "Marketing"]),
            "First Visit": items.first_visit[sid].isoformat() if sid in items.first_visit
            else "",
            "Last Visit": items.last_visit[sid].isoformat() if sid in items.last_visit else "",
            "Transaction Count": str(items.count.get(sid, 0)),
            "Lifetime Spend": money(items.spend.get(sid, 0.0)),
            "Email Subscription Status": status,
            "Instant Profile": "Yes" if rng.random() < 0.3 else "No",
        })
    return rows


def shopify_customer_rows(gen: Generator, people: list[Person],
                          orders: ShopifyOrders) -> list[dict]:
    rng = gen.rng
    rows = []
    for n, p in enumerate(x for x in people if x.shopify):
        city, province, zip_code = p.city
        tags = []
        if p.archetype in ("regular", "big") and rng.random() < 0.5:
            tags.append("vip")
        if p is gen.organiser or rng.random() < 0.25:
            tags.append("book-club")
        if rng.random() < 0.2:
            tags.append("newsletter")
        # Shared with Square by email for most, by phone only for a few (different email).
        email = p.email
        if p.square and n % 4 == 1:
            email = f"{p.first[0]}{p.last}@{EMAIL_DOMAINS[0]}".lower()
        rows.append({
            "Customer ID": f"'{p.shopify_id}",
            "First Name": p.first,
            "Last Name": p.last,
            "Email": email.upper() if n % 9 == 4 else email,
            "Accepts Email Marketing": rng.choice(["yes", "yes", "no"]),
            "Default Address Company": "Rose City Readers" if p is gen.organiser else "",
            "Default Address Address1": p.street,
            "Default Address Address2": "",
            "Default Address City": city,
            "Default Address Province Code": province,
            "Default Address Country Code": "US",
            "Default Address Zip": f"'{zip_code}",
            "Default Address Phone": "",
            "Phone": f"'{p.phone}" if rng.random() < 0.7 else "",
            "Accepts SMS Marketing": rng.choice(["yes", "no", "no"]),
            "Total Spent": f"{orders.spend.get(p.email, 0.0):.2f}",
            "Total Orders": str(orders.count.get(p.email, 0)),
            "Note": "Organises the Rose City Readers book club" if p is gen.organiser else "",
            "Tax Exempt": "no",
            "Tags": ", ".join(tags),
            "Birthday (customer.metafields.facts.birth_date)":
                p.birthday.isoformat() if p.birthday and rng.random() < 0.4 else "",
        })
    return rows


def build(seed: int = 20261101) -> dict[str, list[dict[str, str]]]:
    gen = Generator(seed)
    people = gen.people()
    rng = gen.rng
    items = SquareItems(gen)
    orders = ShopifyOrders(gen)

    visits = sorted((day, n, channel) for n, p in enumerate(people) for day, channel in p.visits)
    for day, n, channel in visits:
        p = people[n]
        if channel == "square":
            items.transaction(day, p, items.basket(books=rng.choice([0, 1, 1, 2]),
                                                   cafe=rng.random() < 0.7))
        else:
            orders.order(day, p, channel, orders.basket())

    # Anonymous café and book sales: no Customer ID (they are refused as rows without a key).
    for _ in range(14):
        items.transaction(gen._day(START, TODAY - dt.timedelta(days=2)), None,
                          items.basket(books=rng.choice([0, 1]), cafe=True))

    # October's big spenders: a class set of picture books, and a book club's pick.
    librarian, organiser = gen.librarian, gen.organiser
    items.transaction(dt.date(2026, 10, 14), librarian,
                      [("Children's", "Otter Learns to Swim", 12.99, "KID-4001", 40),
                       ("Children's", "The Moon Has a Cat", 9.99, "KID-4002", 30),
                       ("Children's", "Tiny Dragon, Big Sneeze", 14.99, "KID-4003", 25)],
                      location="Old Town")
    orders.order(dt.date(2026, 10, 20), organiser, "web", [(*BOOK_CLUB_PICK, 45)])
    orders.order(dt.date(2026, 10, 22), organiser, "pos",
                 [("House Blend Beans 12oz", 16.00, "BEAN-12", "Marginalia Roasters", 2)])

    # Two refunds of earlier Square sales, and a cancelled and a partly refunded web order.
    customer_sales = {r["Transaction ID"]: r for r in items.rows
                      if r["Customer ID"] and r["Category"] in BOOK_CATEGORIES
                      and r["Date"] < "2026-09-01"}
    for sale in rng.sample(sorted(customer_sales.values(), key=lambda r: r["Transaction ID"]), 2):
        items.refund([sale], days_later=rng.randint(2, 9))
    regulars = [p for p in people if p.shopify and p.archetype == "regular"]
    orders.order(dt.date(2026, 8, 3), regulars[0], "web", orders.basket(), cancelled=True)
    orders.order(dt.date(2026, 9, 12), regulars[1], "web",
                 [("Orbit of Ash", 19.99, "SF-3001", "Gullfeather Books", 1),
                  ("Salt, Smoke & Cedar", 34.99, "CK-5001", "Cedar Table Books", 1)],
                 refunded=19.99)

    # Exports list the newest first for Square (by date and time), by order number for Shopify.
    # (A transaction's rows share their date and time, and the sort is stable, so they stay
    # together; a refund has its own date and so its own run of rows.)
    items.rows.sort(key=lambda r: (r["Date"], r["Time"]), reverse=True)
    return {
        "square-customers-2026-11-01.csv": square_customer_rows(gen, people, items),
        "items-2026-01-01-2026-10-31.csv": items.rows,
        "shopify-customers_export.csv": shopify_customer_rows(gen, people, orders),
        "shopify-orders_export_1.csv": orders.rows,
    }


HEADERS = {
    "square-customers-2026-11-01.csv": SQUARE_CUSTOMER_HEADER,
    "items-2026-01-01-2026-10-31.csv": SQUARE_ITEMS_HEADER,
    "shopify-customers_export.csv": SHOPIFY_CUSTOMER_HEADER,
    "shopify-orders_export_1.csv": SHOPIFY_ORDER_HEADER,
}


def main() -> None:
    for name, rows in build().items():
        with (HERE / name).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=HEADERS[name])
            writer.writeheader()
            writer.writerows(rows)
        print(f"{name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
