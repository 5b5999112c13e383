"""The base of every model in the project document."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DocumentModel(BaseModel):
    """A part of the document: unknown fields are errors and assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
