"""``review:`` in a preset: which sets people see, and with what stated precision the rest are accepted.

Kept apart from ``mora.config`` (which imports it) so the routing's knobs live beside the routing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ReviewConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routing: Literal["agreement", "reliability"] = Field(
        "agreement", description="agreement: both judges' picks agree -> accepted, else review (the paper); "
                                 "reliability: accepted when the measured probability that people choose the "
                                 "winner clears a threshold certified on audited human decisions (README, "
                                 "'Review routing'); falls back to agreement while nothing can be certified")
    target_precision: float = Field(0.9, gt=0, lt=1, description="reliability: the share of auto-accepted sets "
                                                                 "that must agree with people")
    confidence: float = Field(0.95, ge=0.5, lt=1, description="reliability: the probability, over the audited "
                                                              "sets, that the certified threshold meets the target")
    audit_share: float = Field(0.05, ge=0, le=1, description="share of sets, drawn at random before judging, that "
                                                             "people decide even when the judges accepted them: "
                                                             "they measure the precision and certify the threshold")
