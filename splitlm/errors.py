"""The one exception family users see. The CLI prints its message on one line and exits 1."""


class SplitlmError(Exception):
    """A user-facing error: the message names the input (file:line, flag) and what to do."""


class InputError(SplitlmError):
    """A corpus file or row cannot be read."""


class ConfigError(SplitlmError):
    """A flag or config value is invalid, or incompatible with the data."""


class AssetError(SplitlmError):
    """An offline asset (tokenizer, corpus) is missing or corrupt."""


class SchemaError(SplitlmError):
    """A file on disk does not match the data contract it should follow."""
