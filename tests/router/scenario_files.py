"""The routing scenario file the tests read: the copy vendored in this repository, so that a clone on
its own runs them, and the contract it copies, in the shared folder beside the repository (if there)."""

from pathlib import Path

REPOSITORY = Path(__file__).parents[2]
NABARI = REPOSITORY / "shared/scenarios/routing-nabari.yaml"
NABARI_CONTRACT = REPOSITORY.parent / "shared/scenarios/routing-nabari.yaml"
