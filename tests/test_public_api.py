"""The public surface is policyqa/__init__.py; keep __all__ honest and every error exported."""

from __future__ import annotations

import inspect

import policyqa
from policyqa import _errors


def test_all_names_exist():
    for name in policyqa.__all__:
        assert hasattr(policyqa, name), name


def test_every_error_is_exported_and_derives_from_the_base():
    errors = [obj for _, obj in inspect.getmembers(_errors, inspect.isclass) if issubclass(obj, Exception)]
    for error in errors:
        assert error.__name__ in policyqa.__all__
        assert issubclass(error, policyqa.PolicyQAError)


def test_front_ends_import_only_the_public_package():
    from policyqa import cli

    source = inspect.getsource(cli)
    assert "from policyqa._" not in source and "import policyqa._" not in source
