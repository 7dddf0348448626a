"""Klaviyo (JSON:API, private key) as an email destination: segments become Klaviyo lists."""

from segsync.plugins import hookimpl

from .destination import KlaviyoDestination


@hookimpl
def register_destinations(register):
    register(KlaviyoDestination)
