"""The one exception a stage turns into a message: kept apart so that it rarely changes."""


class UserError(Exception):
    """Bad input the user can fix: the message says what, the value, and what is allowed."""
