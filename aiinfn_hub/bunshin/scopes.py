"""The service's name and custom scopes (granted by ``hub_config``, checked by ``service``)."""

from __future__ import annotations

from typing import Final

SERVICE: Final = "bunshin"
SUBMIT: Final = "custom:bunshin:submit"
OFFLOAD: Final = "custom:bunshin:offload"
ADMIN: Final = "custom:bunshin:admin"
DESCRIPTIONS: Final = {
    SUBMIT: "Submit Bunshin jobs (clones of your servers).",
    OFFLOAD: "Offload Bunshin jobs to remote sites.",
    ADMIN: "See and cancel everyone's Bunshin jobs.",
}
