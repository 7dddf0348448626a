"""A minimal third-party plugin: one source with fixed records and one command."""

import datetime as dt

from segsync.core import ConnectorConfig, Customer, Order, Source
from segsync.plugins import hookimpl


class StaticConfig(ConnectorConfig):
    customers: int = 2


class StaticSource(Source):
    """Yields ``customers`` people, each with one order on 2026-01-01."""

    type_name = "example_static"
    Config = StaticConfig

    def pull(self, state):
        for i in range(self.config.customers):
            yield Customer(key=f"c{i}", email=f"person{i}@example.com")
            yield Order(key=f"o{i}", customer_key=f"c{i}", ordered_at=dt.datetime(2026, 1, 1),
                        total=10.0 + i)


@hookimpl
def register_sources(register):
    register(StaticSource)


@hookimpl
def register_commands(app):
    @app.command()
    def example_hello():
        """Say hello from the example plugin."""
        print("hello from segsync-example")
