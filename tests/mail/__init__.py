"""Tests of digest/mail, one module per module there.

This file makes tests/mail the package `mail` under `tests` (on sys.path through pytest's
`pythonpath`): pytest's importlib mode adds no test folder to sys.path, so the shared helpers
are imported as `from mail.mailworld import ...`, and `mypy tests/mail` finds `support` too.
"""
