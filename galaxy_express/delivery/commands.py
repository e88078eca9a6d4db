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
    timestamp: Timestamp
    recipient_id: Id
    personal_preference: bool
    marketing_preference: bool
    preferences: dict[PackageType, bool] | None = Field(
        default=None, description="Other registered types; a type not named is allowed."
    )

    @model_validator(mode="after")
    def _named_fields_agree(self) -> UpdatePreferences:
        for name, value in (self.preferences or {}).items():
            named = {"personal": self.personal_preference, "marketing": self.marketing_preference}
            if name in named and named[name] != value:
                raise ValueError(f"preferences.{name} disagrees with {name}_preference")
        return self

    def allowed(self) -> dict[str, bool]:
        """The full statement of what the recipient accepts."""
        allowed = dict.fromkeys(PACKAGE_TYPES, True)
        allowed.update(self.preferences or {})
        allowed["personal"] = self.personal_preference
        allowed["marketing"] = self.marketing_preference
        return allowed
