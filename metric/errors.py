"""The one error type a user sees for bad configuration or bad input: a message naming the key and the fix."""


class ConfigError(ValueError):
    """Raised before any training work when a config value or input file cannot work; the message says how to fix it."""
