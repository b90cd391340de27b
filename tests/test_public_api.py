"""The public surface is policyqa/__init__.py; keep __all__ honest and every error exported."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest

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


def test_all_is_sorted_and_lists_every_public_name():
    assert policyqa.__all__ == sorted(policyqa.__all__)
    public = {name for name, obj in vars(policyqa).items()
              if not name.startswith("_") and not inspect.ismodule(obj) and name != "annotations"} | set(policyqa._LAZY)
    assert public == set(policyqa.__all__), public ^ set(policyqa.__all__)


@pytest.mark.slow
def test_search_loads_no_heavy_dependency(real_home):
    """llama-index, streamlit and matplotlib are for the baseline, the app and the plots: a search (the
    CLI's `policyqa search`) must not pay for importing them. (scikit-learn is not checked here:
    sentence-transformers imports it itself when the model loads; our own imports of it are lazy.)"""
    code = ("import sys; from policyqa import load_settings, open_index; "
            f"open_index(load_settings(home={str(real_home)!r}), build='never').search('selling fake ID cards'); "
            "print(','.join(m for m in ('llama_index', 'streamlit', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == ""


def test_the_http_server_is_imported_only_when_asked_for():
    """`policyqa serve` needs FastAPI and uvicorn; `import policyqa` (and so `policyqa judge`) must not pay for them."""
    code = ("import sys, policyqa, policyqa.cli; before = 'fastapi' in sys.modules; policyqa.serve; "
            "print(before, 'fastapi' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "True"]
