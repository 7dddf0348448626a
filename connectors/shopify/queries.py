"""The GraphQL documents segsync sends to Shopify, built per API version.

Paged and bulk queries select the same fields from the same fragments, so both paths store the
same records; they differ only in how connections are shaped (paged: ``nodes`` with
``first``/``after``; bulk: bare ``edges { node }``, which Shopify flattens into JSONL lines).
Only fields segsync maps are selected: every selected field costs bucket points on Shopify.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import version_at_least

#: The version that added ``defaultEmailAddress`` / ``defaultPhoneNumber`` (with consent) to
#: Customer and deprecated the flat ``email`` / ``phone`` / consent fields.
CONTACT_OBJECTS_SINCE = "2025-04"
#: The version that added ``groupObjects`` to ``bulkOperationRunQuery``.
GROUP_OBJECTS_SINCE = "2025-07"


def customer_fields(version: str) -> str:
    """A customer's selection: contact and consent from wherever this version keeps them."""
    if version_at_least(version, CONTACT_OBJECTS_SINCE):
        contact = """
        defaultEmailAddress { emailAddress marketingState marketingUpdatedAt }
        defaultPhoneNumber { phoneNumber marketingState marketingUpdatedAt }"""
    else:
        contact = """
        email
        phone
        emailMarketingConsent { marketingState consentUpdatedAt }
        smsMarketingConsent { marketingState consentUpdatedAt }"""
    return f"""
        id
        firstName
        lastName
        tags
        createdAt
        updatedAt
        defaultAddress {{ city provinceCode countryCodeV2 zip }}{contact}"""


ORDER_FIELDS = """
        id
        name
        email
        phone
        createdAt
        processedAt
        updatedAt
        cancelledAt
        test
        sourceName
        displayFinancialStatus
        totalPriceSet { shopMoney { amount currencyCode } }
        totalRefundedSet { shopMoney { amount } }
        refunds { createdAt }
        customer { id }
        retailLocation { name }"""

LINE_FIELDS = """
            id
            title
            quantity
            sku
            vendor
            originalUnitPriceSet { shopMoney { amount } }
            discountedTotalSet { shopMoney { amount } }
            product { productType tags }"""

CHECKOUT_FIELDS = """
        id
        createdAt
        updatedAt
        completedAt
        abandonedCheckoutUrl
        customer { id }"""

PAGE_INFO = "pageInfo { hasNextPage endCursor }"


def paged_customers(version: str) -> str:
    return f"""query SegsyncCustomers($first: Int!, $after: String, $query: String) {{
  customers(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    nodes {{{customer_fields(version)}
    }}
    {PAGE_INFO}
  }}
}}"""


PAGED_ORDERS = f"""query SegsyncOrders($first: Int!, $after: String, $query: String,
                    $lines: Int!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    nodes {{{ORDER_FIELDS}
      lineItems(first: $lines) {{
        nodes {{{LINE_FIELDS}
        }}
        {PAGE_INFO}
      }}
    }}
    {PAGE_INFO}
  }}
}}"""

#: The rest of an order's line items, when it has more than one order page carries.
ORDER_LINES = f"""query SegsyncOrderLines($id: ID!, $first: Int!, $after: String) {{
  order(id: $id) {{
    lineItems(first: $first, after: $after) {{
      nodes {{{LINE_FIELDS}
      }}
      {PAGE_INFO}
    }}
  }}
}}"""

# Abandoned checkouts cannot be sorted by updated_at, so they are read whole per window.
PAGED_CHECKOUTS = f"""query SegsyncCheckouts($first: Int!, $after: String, $query: String) {{
  abandonedCheckouts(first: $first, after: $after, query: $query) {{
    nodes {{{CHECKOUT_FIELDS}
    }}
    {PAGE_INFO}
  }}
}}"""

COUNTS = {
    "customers": "query SegsyncCount($query: String) { customersCount(query: $query) { count } }",
    "orders": "query SegsyncCount($query: String) { ordersCount(query: $query) { count } }",
}

ACCESS = """query SegsyncAccess {
  shop { name myshopifyDomain }
  currentAppInstallation { accessScopes { handle } }
}"""

CHECKOUTS_PROBE = "query SegsyncCheckoutsProbe { abandonedCheckouts(first: 1) { nodes { id } } }"


def bulk_customers(version: str, search: str) -> str:
    return f"""{{
  customers(query: {quote(search)}, sortKey: UPDATED_AT) {{
    edges {{ node {{{customer_fields(version)}
    }} }}
  }}
}}"""


def bulk_orders(search: str) -> str:
    return f"""{{
  orders(query: {quote(search)}, sortKey: UPDATED_AT) {{
    edges {{ node {{{ORDER_FIELDS}
      lineItems {{ edges {{ node {{{LINE_FIELDS}
      }} }} }}
    }} }}
  }}
}}"""


def bulk_run(version: str) -> str:
    # Grouping children under their parent makes Shopify's job slower and likelier to fail,
    # and segsync joins lines itself; the default differs between versions, so say it.
    group = ", groupObjects: false" if version_at_least(version, GROUP_OBJECTS_SINCE) else ""
    return f"""mutation SegsyncBulk($query: String!) {{
  bulkOperationRunQuery(query: $query{group}) {{
    bulkOperation {{ id status }}
    userErrors {{ field message code }}
  }}
}}"""


BULK_FIELDS = "id status errorCode objectCount url partialDataUrl query"
BULK_BY_ID = f"""query SegsyncBulkStatus($id: ID!) {{
  node(id: $id) {{ ... on BulkOperation {{ {BULK_FIELDS} }} }}
}}"""
BULK_CURRENT = f"""query SegsyncBulkCurrent {{
  currentBulkOperation(type: QUERY) {{ {BULK_FIELDS} }}
}}"""


def quote(text: str) -> str:
    """``text`` as a GraphQL string literal (a bulk query is one document without variables)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Window:
    """A half-open ``updated_at`` range ``[since, until)``; ``since`` is None on a first pull."""

    since: str | None
    until: str

    def search(self) -> str:
        """The Shopify search filter selecting this window (dates must be quoted)."""
        upper = f"updated_at:<'{self.until}'"
        return f"updated_at:>='{self.since}' AND {upper}" if self.since else upper
