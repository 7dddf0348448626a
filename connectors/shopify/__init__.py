"""Shopify (Admin GraphQL API) as a source of customers, orders and abandoned checkouts."""

from segsync.plugins import hookimpl

from .source import ShopifySource


@hookimpl
def register_sources(register):
    register(ShopifySource)
