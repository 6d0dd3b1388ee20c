"""What goes to people first, and the line that tells them why a set is theirs.

Audits come first: their answers certify the routing threshold, and a sample people decided only in part
(the easy audits left for last) would no longer be a random one. Then every other set by how much its
answer would teach: the doubt about its winner (1 - the largest probability that people choose a
candidate) times how little is known of its judges under its criterion (the mean width of their
accuracies' 95% intervals). A set the judges split on, under a criterion nobody has reviewed yet, comes
before one the model already settles. Label Studio shows tasks in this order: they are imported in it,
carry it as ``priority`` in their data, and the project's "By priority" tab sorts by it.
"""

from __future__ import annotations

from mora.review.reliability import ReliabilityModel, SetEvidence

AUDIT_FIRST = 2.0  # above any teaching value (at most 1)


def record_evidence(record: dict) -> SetEvidence:
    """The model's view of a pending review record."""
    passing = tuple(record.get("passing") or record.get("candidates") or ())
    picks, confidence = {}, {}
    for judge in record["judges"]:
        pick = next((c for c in judge.get("ranking") or [] if c in passing), None)
        if not judge.get("abstained") and pick is not None:
            picks[judge["judge"]], confidence[judge["judge"]] = pick, float(judge.get("confidence") or 0.0)
    return SetEvidence(set_id=record["set_id"], iteration=record["iteration"], criterion=record["criterion"],
                       passing=passing, picks=picks, confidence=confidence)


def priority(record: dict, model: ReliabilityModel | None) -> float:
    """Higher first: audits, then the teaching value (``model`` None: every set alike)."""
    if record.get("audit"):
        return AUDIT_FIRST
    model = model or ReliabilityModel()
    evidence = record_evidence(record)
    people = model.people_choice(evidence)
    doubt = 1 - max(people.values()) if people else 1.0
    judges = [j["judge"] for j in record["judges"]]
    unknown = sum(model.uncertainty(j, record["criterion"]) for j in judges) / len(judges) if judges else 1.0
    return round(doubt * unknown, 4)


def why(record: dict, audit_share: float | None = None) -> str:
    """One line for the review screen: why this set came to people."""
    reason = record.get("why") or record.get("reason") or ""
    winner = record.get("winner")
    if record.get("audit"):
        share = f"a random {audit_share:.0%} of" if audit_share else "a random share of"
        return (f"Audit: the judges accepted candidate_{winner}; {share} accepted sets comes to people, to measure "
                "how often accepted sets agree with you. Choose as you would for any set.")
    if reason.startswith("below the certified threshold"):
        probability = record.get("probability")
        chance = f" only a {probability:.0%} chance" if probability is not None else " too little chance"
        return (f"By the judges' measured reliability, their likeliest pick (candidate_{winner}) has{chance} of "
                "being the one you would choose: too uncertain to accept without you.")
    return reason[:1].upper() + reason[1:] + "." if reason else "The judges could not settle this set."
