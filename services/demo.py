"""Demo consultations, submitted as partner agencies would, so a run shows routing at work."""

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from shared.vocabulary import ContactStatus, FoundBy, IssueTag, Pathway, Relation, Urgency

# Households shaped like the report's examples (実施要領 3(2) table): member relations and issue tags.
HOUSEHOLD_SHAPES: list[list[tuple[Relation, int, list[IssueTag]]]] = [
    [(Relation.self_, 78, [IssueTag.long_term_care])],
    [(Relation.self_, 83, [IssueTag.long_term_care]), (Relation.child, 52, [IssueTag.hikikomori, IssueTag.employment])],
    [(Relation.self_, 44, [IssueTag.cancer, IssueTag.employment]), (Relation.child, 9, [IssueTag.disability])],
    [(Relation.parent, 80, [IssueTag.long_term_care]), (Relation.child, 3, [IssueTag.childcare])],
    [(Relation.self_, 31, [IssueTag.suspected_disability])],
    [(Relation.self_, 36, [IssueTag.domestic_violence])],
    [(Relation.self_, 45, [IssueTag.poverty, IssueTag.legal])],
    [(Relation.self_, 70, [IssueTag.social_isolation])],
    [
        (Relation.self_, 46, [IssueTag.mental_health]),
        (Relation.spouse, 48, [IssueTag.employment]),
        (Relation.child, 14, [IssueTag.education]),
    ],
]


def demo_municipality(path: Path) -> tuple[str, list[str]]:
    """The municipality code and leaf area ids of a directory file."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    municipality = data["municipality"]
    parents = {area.get("parent") for area in municipality["areas"]}
    leaves = [area["id"] for area in municipality["areas"] if area["id"] not in parents]
    return str(municipality["code"]), leaves


def support_meeting_members(path: Path) -> list[str]:
    """A demo 支援会議 roster: the lead and the municipality-wide welfare agencies of a directory file."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    lead = str(data["municipality"]["lead"])
    wide = [
        str(a["id"])
        for a in data.get("agencies", [])
        if a.get("scope") == "municipality" and a.get("sector", "welfare") == "welfare"
    ]
    return sorted({lead, *wide})


def consultations(directory_file: Path, count: int, *, seed: int = 106) -> Iterator[dict[str, Any]]:
    """`count` consultation bodies for POST /v1/consultations, reproducible for a seed."""
    code, areas = demo_municipality(directory_file)
    rng = random.Random(seed)
    for _ in range(count):
        shape = rng.choice(HOUSEHOLD_SHAPES)
        area, pathway = rng.choice(areas), rng.choice(list(Pathway))
        found_by = rng.choices(list(FoundBy), weights=[6, 3, 1])[0]
        # A neighbour's concern found on an outreach round: nobody has spoken with the person yet.
        reached = pathway != Pathway.family_or_community or found_by != FoundBy.outreach
        yield {
            "municipality_code": code,
            "area": area,
            "pathway": pathway.value,
            "found_by": found_by.value,
            "contact": (ContactStatus.reached if reached else ContactStatus.not_yet_reached).value,
            "existing_services_fit": rng.random() > 0.1,
            "backup_requested": rng.random() < 0.1,
            "urgency": rng.choices(list(Urgency), weights=[6, 3, 1])[0].value,
            "household": [
                {"relation": relation.value, "age": age, "issues": [t.value for t in tags]}
                for relation, age, tags in shape
            ],
        }
