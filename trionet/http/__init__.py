"""Sans-IO HTTP layers for intercepted connections: identity checks and secret substitution."""
