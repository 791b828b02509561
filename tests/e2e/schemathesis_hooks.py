"""Loaded into the schemathesis run of test_schemathesis.py (SCHEMATHESIS_HOOKS).

CPython 3.11 before 3.11.8 can raise "SystemError: AST constructor recursion depth mismatch"
from ast.parse deep in a call stack; Hypothesis parses the source of lambdas only to describe
them in messages. Such a failure becomes the "unknown lambda" description Hypothesis uses when
it cannot find the source, instead of an error of the whole run. Nothing else is changed.
"""

from __future__ import annotations

import functools
from typing import Any

from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


@functools.wraps(_describe)
def _lambda_description(f: Any, *args: Any, **kwargs: Any) -> str:
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _lambda_description
