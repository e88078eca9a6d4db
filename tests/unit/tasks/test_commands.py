"""A task name is blank exactly when the documented JSON schema says it is."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from galaxy_express.tasks.commands import NOT_BLANK_PATTERN, TaskFields


@pytest.mark.parametrize("name", ["a", " x ", "\u001e", "\u0085", "\u200b"])
def test_a_name_with_a_character_that_is_not_white_space_is_accepted(name: str) -> None:
    assert TaskFields(name=name).name == name
    assert re.search(NOT_BLANK_PATTERN, name)


@pytest.mark.parametrize("name", [" ", "\t\r\n", "\u00a0\u2003\u3000", "\ufeff"])
def test_a_name_of_white_space_only_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="must not be blank"):
        TaskFields(name=name)
    assert not re.search(NOT_BLANK_PATTERN, name)
