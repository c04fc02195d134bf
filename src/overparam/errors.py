"""The one exception type for bad input."""


class ConfigError(ValueError):
    """A bad config value, reported as one sentence that names the key."""
