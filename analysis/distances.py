"""Typological distances from English: the x axis of the paper's Figure 2 (and the language order of Figures 4-5).

Three sources, in the order the report uses them:
1. an experiment's own `language_distances` / `distance_name` (experiment.json; a synthetic world's
   embedding misalignment),
2. the shipped table `analysis/data/uriel_syntactic_distances.csv`: URIEL syntactic distances from
   English for the paper's XNLI languages (which include PAWS-X's) plus ja and ko, computed offline
   with the `urielplus` package (its provenance is in the file's header),
3. `compute_uriel_distances`, the way to recompute them (needs `pip install urielplus`, works offline:
   the package ships the URIEL database). `python -m analysis.distances` prints the shipped table anew.
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Mapping, Sequence

import pandas as pd

from analysis.load import ExperimentInfo

SHIPPED_FILE = "uriel_syntactic_distances.csv"
URIEL_DISTANCE_NAME = "URIEL syntactic distance from English"

# ISO 639-1 codes of the tasks' languages -> the ISO 639-3 codes URIEL is keyed by (macrolanguage codes
# for Arabic, Swahili and Chinese, as lang2vec's users commonly map them).
ISO639_3: Mapping[str, str] = MappingProxyType(
    {
        "en": "eng", "ar": "ara", "bg": "bul", "de": "deu", "el": "ell", "es": "spa", "fr": "fra", "hi": "hin",
        "ru": "rus", "sw": "swa", "th": "tha", "tr": "tur", "ur": "urd", "vi": "vie", "zh": "zho", "ja": "jpn",
        "ko": "kor",
    }
)


@dataclass(frozen=True)
class Distances:
    """Distance from English per language, and what the distance is (for the figure's axis)."""

    values: Mapping[str, float]
    name: str

    def covers(self, languages: Sequence[str]) -> bool:
        return all(lang in self.values for lang in languages)


def shipped_distances() -> Distances:
    """The URIEL syntactic distances shipped with the package."""
    with resources.files("analysis").joinpath("data", SHIPPED_FILE).open("r", encoding="utf-8") as handle:
        frame = pd.read_csv(handle, comment="#")
    return Distances(MappingProxyType(dict(zip(frame["lang"], frame["distance"].astype(float)))), URIEL_DISTANCE_NAME)


def experiment_distances(info: ExperimentInfo) -> Distances | None:
    """The distances to plot for an experiment: its own if it has them, else URIEL's if they cover it."""
    if info.language_distances is not None:
        return Distances(info.language_distances, info.distance_name or "distance from English")
    shipped = shipped_distances()
    return shipped if shipped.covers(info.languages) else None


def order_by_distance(languages: Sequence[str], distances: Distances | None) -> list[str]:
    """Languages sorted by distance from English (stable; unchanged when distances are unknown)."""
    if distances is None or not distances.covers(languages):
        return list(languages)
    return sorted(languages, key=lambda lang: distances.values[lang])


def compute_uriel_distances(languages: Sequence[str], distance: str = "syntactic", source: str = "en") -> dict[str, float]:
    """Recompute URIEL distances from `source` with urielplus (offline; `pip install urielplus`)."""
    try:
        from urielplus import urielplus
    except ImportError as error:
        raise RuntimeError("urielplus is not installed: pip install 'urielplus>=1.3' (extra 'distances')") from error
    unknown = [lang for lang in (source, *languages) if lang not in ISO639_3]
    if unknown:
        raise ValueError(f"no ISO 639-3 code known for {', '.join(unknown)}; add it to analysis.distances.ISO639_3")
    uriel = urielplus.URIELPlus()
    codes = [ISO639_3[source], *(ISO639_3[lang] for lang in languages)]
    matrix = uriel.new_distance(distance, codes)
    return {lang: float(matrix[0][i + 1]) for i, lang in enumerate(languages)}


def distances_csv(values: Mapping[str, float], distance: str) -> str:
    """The shipped file's content: provenance header plus lang, iso639_3, distance."""
    from importlib.metadata import version

    header = (
        f"# URIEL {distance} distance from English (eng), angular distance as computed by\n"
        f"# urielplus {version('urielplus')}: URIELPlus() with its default databases (the original URIEL\n"
        f"# features), new_distance('{distance}', ['eng', ...]); languages mapped to ISO 639-3 by\n"
        "# analysis.distances.ISO639_3. Regenerate: python -m analysis.distances > analysis/data/" + SHIPPED_FILE + "\n"
        "# The paper used lang2vec (URIEL) for its Figure 2; its exact distance is not stated.\n"
    )
    frame = pd.DataFrame({"lang": list(values), "iso639_3": [ISO639_3[k] for k in values], "distance": list(values.values())})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return header + buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Print the distances table for the tasks' languages (recomputed with urielplus)."""
    parser = argparse.ArgumentParser(prog="python -m analysis.distances", description=main.__doc__)
    parser.add_argument("--distance", default="syntactic", help="URIEL distance type (default: syntactic)")
    args = parser.parse_args(argv)
    languages = [lang for lang in ISO639_3 if lang != "en"]
    values = {"en": 0.0, **compute_uriel_distances(languages, args.distance)}
    sys.stdout.write(distances_csv(values, args.distance))
    return 0


if __name__ == "__main__":
    sys.exit(main())
