"""The service's name, the name users see, and custom scopes (granted by ``hub_config``,
checked by ``service``)."""

from __future__ import annotations

from typing import Final

SERVICE: Final = "bunshin"
DISPLAY_NAME: Final = "Batch jobs"  # the hub's services menu and the page; URLs keep SERVICE
SUBMIT: Final = "custom:bunshin:submit"
OFFLOAD: Final = "custom:bunshin:offload"
ADMIN: Final = "custom:bunshin:admin"
DESCRIPTIONS: Final = {
    SUBMIT: "Submit Bunshin jobs (clones of your servers).",
    OFFLOAD: "Offload Bunshin jobs to remote sites.",
    ADMIN: "See and cancel everyone's Bunshin jobs.",
}
