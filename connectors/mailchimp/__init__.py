"""Mailchimp (Marketing API v3) as a destination: segment membership as a tag in an audience."""

from segsync.plugins import hookimpl

from .destination import MailchimpDestination


@hookimpl
def register_destinations(register):
    register(MailchimpDestination)
