"""Exceptions that reach a user: one short class per kind of failure."""


class UserError(Exception):
    """Bad input from a user (a manifest, a flag, a file): the message names what and the fix.

    The CLI prints it as one line and exits 2; it never shows a traceback.
    """
