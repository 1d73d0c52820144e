class UserError(Exception):
    """Bad input the user can fix: the message says what, the value, and what is allowed."""
