"""Escape hatches: the few steps of a source that a declaration cannot say, as plain Python functions.

A declaration names one of these by its dotted path (`group: {python: "extensions.shop:orders_from_rows"}`)
and says in a comment why a declaration could not. They live outside the framework's packages on purpose:
the framework stays free of any system's knowledge, and this package is the one place to look for it.
"""
