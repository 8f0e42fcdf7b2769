"""A synthetic multilingual world: data and a tiny BERT that the project generates itself.

Models and datasets cannot be downloaded everywhere the project runs (tests, CI, the demo),
so this package writes a world that loads through exactly the code paths used for mBERT and
the real datasets (AutoTokenizer / AutoModelForSequenceClassification `from_pretrained(dir)`,
`datasets.load_dataset(dir, config, split=...)`, XTREME TSVs), and in which the paper's
mechanism can show: target languages whose word embeddings are misaligned from English by a
known distance d_k, some with another word order, and English synonyms for RS-DA.

Design (see WorldSpec): labels come from a bag-of-concepts teacher (a random weight per concept,
the first concept of each sentence counted `head_weight` times, so English word order carries
information); the encoder's word embeddings are frozen-friendly unit vectors; target-language
and synonym offsets share a low-rank subspace (`misalignment_rank`), the modelling assumption
under which synonyms tell RS-DA how languages differ (None makes offsets isotropic, where
RS-RP and ADV help distant languages more and RS-DA does not).

    world = ensure_world("/tmp/world", spec=WorldSpec.tiny(), seed=0)
    world.model_dir, world.hub_dir("pawsx"), world.tsv_dir("xnli"), world.synonyms_path
"""

from .corpus import WORD_ORDERS
from .spec import PRESETS, WORLD_FORMAT, SyntheticLanguage, WorldSpec
from .world import DISTANCE_NAME, World, build_world, ensure_world, load_world

__all__ = [
    "DISTANCE_NAME",
    "PRESETS",
    "WORD_ORDERS",
    "WORLD_FORMAT",
    "SyntheticLanguage",
    "World",
    "WorldSpec",
    "build_world",
    "ensure_world",
    "load_world",
]
