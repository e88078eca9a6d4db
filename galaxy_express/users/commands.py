"""The users domain's command: the username rules and the body a user is created with.

Both edges build it (HTTP from the JSON body, Thrift from its struct), so a
request is validated by the same rules whichever way it came.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from galaxy_express.core.validation import Id, RequestModel

# ASCII letters, digits and . _ -, starting with a letter or digit: safe in URLs,
# logs and file names, and lowercased the same way by every database.
# The pattern carries the length too, so a reader of the schema (or a generator
# of test data) that looks at the pattern alone still gets it right.
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
USERNAME_MIN_LENGTH = 3
USERNAME_MAX_LENGTH = 64

Username = Annotated[
    str,
    Field(
        min_length=USERNAME_MIN_LENGTH,
        max_length=USERNAME_MAX_LENGTH,
        pattern=USERNAME_PATTERN,
        description=(
            "3 to 64 ASCII letters, digits and . _ -, starting with a letter or digit; "
            "unique regardless of case"
        ),
    ),
]


class CreateUser(RequestModel):
    username: Username
    id: Id | None = Field(default=None, description="Made by the server (usr_...) when absent")
