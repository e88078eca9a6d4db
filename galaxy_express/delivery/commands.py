"""The delivery domain's commands: what the service is asked to do.

Both edges build these (HTTP from the JSON body, Thrift from its structs), so a
request is validated by the same rules whichever way it came.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from galaxy_express.core.validation import Id, RequestModel, Text, Timestamp
from galaxy_express.packages.package_types import PACKAGE_TYPES, PackageType


class ContentIn(RequestModel):
    subject: Text = Field(default="", max_length=200)
    body: Text = Field(default="", max_length=16384)


class SendPackage(RequestModel):
    timestamp: Timestamp
    sender_id: Id
    recipient_id: Id
    package_id: Id
    package_type: PackageType
    content: ContentIn | None = None


class UpdatePreferences(RequestModel):
    """A full statement of what a recipient accepts, in either form (or both, agreeing).

    ``personal_preference`` and ``marketing_preference`` (the original form, both
    needed when it is used alone), or ``preferences`` naming any registered types;
    a type named by neither is allowed.
    """

    timestamp: Timestamp
    recipient_id: Id
    personal_preference: bool | None = None
    marketing_preference: bool | None = None
    preferences: dict[PackageType, bool] | None = Field(
        default=None,
        description=(
            "Registered type -> allowed; alone it is a full statement (a type not named is "
            "allowed). Without it, personal_preference and marketing_preference are required."
        ),
    )

    @model_validator(mode="after")
    def _a_full_statement_that_agrees(self) -> UpdatePreferences:
        named = self._named()
        if self.preferences is None:
            missing = [f"{name}_preference" for name, value in named.items() if value is None]
            if missing:
                raise ValueError(f"{' and '.join(missing)} required unless preferences is given")
        for name, value in (self.preferences or {}).items():
            if named.get(name) is not None and named[name] != value:
                raise ValueError(f"preferences.{name} disagrees with {name}_preference")
        return self

    def allowed(self) -> dict[str, bool]:
        """The full statement of what the recipient accepts."""
        allowed = dict.fromkeys(PACKAGE_TYPES, True)
        allowed.update(self.preferences or {})
        allowed.update({k: v for k, v in self._named().items() if v is not None})
        return allowed

    def _named(self) -> dict[str, bool | None]:
        return {"personal": self.personal_preference, "marketing": self.marketing_preference}
