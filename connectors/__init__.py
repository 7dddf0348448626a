"""Built-in connectors, each a plugin registered through the same hooks as third-party ones."""
