"""The job plan: from a validated config to the exact set of jobs, one place that decides what runs.

The Snakefile asks a ``Plan`` which embeddings, comparisons and probes exist (this module), and
which slice of the config each job depends on (``RuleParams``, samesky.params); building the
Plan runs the config's semantic checks (``ConfigChecks``, samesky.config). A comparison, the
unit of the compare jobs, is ``Comparison``: its fields (``COMPARISON_FIELDS``) are the first
fields of the compare records and of the layer atlas rows (``LAYER_FIELDS``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import cached_property

from . import paths
from .config import ConfigChecks, ConfigError, _registry
from .params import RuleParams
from .surveys import IMAGE, SPECTRUM, get_survey


@dataclass(frozen=True)
class Comparison:
    kind: str  # intramodal | crossmodal | self
    crossmatch: str
    survey_a: str
    model_a: str
    survey_b: str
    model_b: str

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, wildcards, kind: str) -> Comparison:
        """The comparison a compare or compare_layers job's wildcards name (its rule param ``kind``)."""
        return cls(kind, **{f.name: getattr(wildcards, f.name) for f in fields(cls) if f.name != "kind"})


COMPARISON_FIELDS = tuple(f.name for f in fields(Comparison))
# The columns of a compare_layers CSV (written by ``metrics.layers``, read by ``report.layers``):
# one row per (metric, block_a, block_b) of one comparison.
LAYER_FIELDS = ("metric", *COMPARISON_FIELDS, "block_a", "block_b", "index_a", "index_b", "depth_a", "depth_b", "n",
                "k", "raw", "calibrated", "tau", "p", "alpha", "null_draws", "null_method",
                "p_max", "tau_max", "calibrated_max", "max_method")
TRUTH_SURVEY, TRUTH_MODEL = "truth", "latent-truth"  # a simulation's latent properties as a space
# The physics tests of two embeddings of the same objects (rule physics_pair, one job per compared
# pair: ``physics.pair_records``); the others run per embedding (rule physics: physics.EMBEDDING_TESTS).
PAIR_PHYSICS_TESTS = ("neighbourhood_wasserstein",)
PAIR_PHYSICS_KINDS = ("intramodal", "crossmodal")  # the compared pairs they run on


def comparison_kind(survey_a: str, model_a: str, survey_b: str, model_b: str) -> str:
    """self (a side against itself: the permutation-null column), intramodal, crossmodal, or
    truth (a side against the simulation's latent properties)."""
    if survey_b == TRUTH_SURVEY:
        return "truth"
    if survey_a == survey_b:
        return "self" if model_a == model_b else "intramodal"
    return "crossmodal"


class Plan(ConfigChecks, RuleParams):
    """The jobs of a schema-filled config (``config.fill_defaults``), checked as it is built.

    Two choices depend on other keys and are made here: the percentile source of a survey not
    listed in ``preprocess.percentile_source`` (the first crossmatch that has it) and the null
    crossmatch when ``metrics.null_crossmatch`` is null (the first crossmatch)."""

    def __init__(self, config: dict):
        self.config = config
        self.run = paths.RunPaths(config["run_name"])  # where this run's results go
        self.reference = config["reference_survey"]
        self.crossmatches: dict[str, dict] = config["crossmatches"]
        self._check_crossmatches()
        self.image_models = self._image_models()
        self.spectrum_model = self._spectrum_model()
        # each crossmatch's image models (crossmatches.<name>.image_models), checked
        self.crossmatch_models = {xm: self._crossmatch_image_models(xm) for xm in self.crossmatches}
        self._check_gpu_memory()
        self._check_preprocess()
        self._check_metrics()
        self._check_probes()
        self._check_neighbourhoods()
        self._check_layer_pairs()
        self.precomputed()  # checks models.precomputed

    def precomputed(self) -> dict[tuple[str, str, str], dict]:
        """``models.precomputed`` by (crossmatch, survey, model): embeddings read from a source
        instead of computed (rule precomputed_embedding, ``sources.import_embeddings``)."""
        out = {}
        for i, entry in enumerate(self.config["models"]["precomputed"]):
            key, where = (entry["crossmatch"], entry["survey"], entry["model"]), f"models.precomputed[{i}]"
            if key not in self.embeddings:
                known = [job[1:] for job in self.embeddings if job[0] == key[0]]
                raise ConfigError(f"{where}: {key} is not an embedding this config computes; on crossmatch "
                                  f"{key[0]!r} it computes (survey, model) {known or 'nothing'}")
            if key in out:
                raise ConfigError(f"{where}: {key} is given twice")
            if self.layers() != "final":
                raise ConfigError(f"{where}: precomputed embeddings have no blocks; set embed.layers: final")
            if entry["id_column"] is None and self.crossmatches[key[0]]["drop_flat"]:
                raise ConfigError(f"{where}: without id_column row i is the crossmatch's i-th object, but "
                                  f"crossmatches.{key[0]}.drop_flat drops rows; give the id column")
            out[key] = dict(entry)
        return out

    def models_for(self, crossmatch: str, survey: str) -> list[str]:
        """Models that embed ``survey`` on ``crossmatch``: the crossmatch's image models
        (``crossmatches.<name>.image_models``) that support it, or the spectrum model."""
        if get_survey(survey).modality == SPECTRUM:
            return [self.spectrum_model]
        registry = _registry()
        return [k for k in self.crossmatch_models[crossmatch] if registry.get_model(k).supports(survey)]

    @cached_property
    def embeddings(self) -> list[tuple[str, str, str]]:
        """Every (crossmatch, survey, model) embedding job."""
        return [
            (xm, survey, model)
            for xm, spec in self.crossmatches.items()
            for survey in spec["surveys"]
            for model in self.models_for(xm, survey)
        ]

    def metric_files(self) -> list[str]:
        """The compare jobs' record files, one per comparison."""
        return [self.run.METRICS.format(**c.as_dict()) for c in self.comparisons]

    @property
    def null_crossmatch(self) -> str:
        return self.config["metrics"]["null_crossmatch"] or next(iter(self.crossmatches))

    @cached_property
    def comparisons(self) -> list[Comparison]:
        registry = _registry()
        out: list[Comparison] = []
        for xm, spec in self.crossmatches.items():
            ref = self.reference_of(xm)
            others = [s for s in spec["surveys"] if s != ref]
            # intramodal: consecutive sizes of one family, within each image survey
            for survey in spec["surveys"]:
                if get_survey(survey).modality != IMAGE:
                    continue
                models = self.models_for(xm, survey)
                for family in dict.fromkeys(registry.get_model(m).family for m in models):
                    sizes = [m for m in models if registry.get_model(m).family == family]
                    out += [Comparison("intramodal", xm, survey, a, survey, b) for a, b in zip(sizes, sizes[1:])]
            # crossmodal: each other survey against the reference, per image model on the reference
            for other in others:
                for model in self.models_for(xm, ref):
                    other_model = model if get_survey(other).modality == IMAGE else self.spectrum_model
                    if other_model in self.models_for(xm, other):
                        out.append(Comparison("crossmodal", xm, other, other_model, ref, model))
            if xm == self.null_crossmatch:
                out += [Comparison("self", xm, ref, m, ref, m) for m in self.models_for(xm, ref)]
            # truth: every embedding of a simulated crossmatch against its latent properties
            if "simulate" in spec["source"]:
                out += [Comparison("truth", xm, survey, model, TRUTH_SURVEY, TRUTH_MODEL)
                        for survey in spec["surveys"] for model in self.models_for(xm, survey)]
        return out

    def probe_properties(self, crossmatch: str) -> list[str]:
        """The per-object properties probed on ``crossmatch`` (probes.properties)."""
        chosen = self.config["probes"]["properties"]
        return list(chosen.get(crossmatch, []) if isinstance(chosen, dict) else chosen)

    @cached_property
    def probes(self) -> list[tuple[str, str, str]]:
        """Every (crossmatch, survey, model) embedding probed for physical properties."""
        return [job for job in self.embeddings if self.probe_properties(job[0])]

    @cached_property
    def probe_paths(self) -> list[str]:
        return [self.run.PROBE.format(crossmatch=xm, survey=s, model=m) for xm, s, m in self.probes]

    def physics_properties(self, crossmatch: str) -> list[str]:
        """The properties the physics tests take on ``crossmatch``: its probed continuous ones."""
        categorical = set(self.config["probes"]["categorical"])
        return [name for name in self.probe_properties(crossmatch) if name not in categorical]

    def physics_tests(self, pairs: bool = False) -> list[str]:
        """The tests of probes.physics.tests run per embedding (rule physics), or with ``pairs`` those
        that compare two embeddings (``PAIR_PHYSICS_TESTS``, rule physics_pair)."""
        return [name for name in self.config["probes"]["physics"]["tests"] if (name in PAIR_PHYSICS_TESTS) == pairs]

    @cached_property
    def physics(self) -> list[tuple[str, str, str]]:
        """Every (crossmatch, survey, model) embedding given the physics tests (probes.physics.tests)."""
        if not self.physics_tests():
            return []
        return [job for job in self.embeddings if self.physics_properties(job[0])]

    @cached_property
    def physics_paths(self) -> list[str]:
        return [self.run.PHYSICS.format(crossmatch=xm, survey=s, model=m) for xm, s, m in self.physics]

    def physics_per_block(self) -> bool:
        """Whether the physics jobs also test every block (probes.physics.per_block, with the layer atlas)."""
        return self.layers() != "final" and self.config["probes"]["physics"]["per_block"]

    def block_graph_width(self) -> int | None:
        """Columns of the block graphs (None: metrics.k): the widest neighbourhood test's k when the
        physics jobs test every block and it exceeds metrics.k. The default tests' k (10) needs no
        more, so turning them on reruns no kNN job."""
        from .physics import TESTS, params_of

        if not (self.physics_per_block() and self.physics):
            return None
        given = self.config["probes"]["physics"]["params"]
        widest = max((params_of(t, given.get(t))["k"] for t in self.physics_tests() if TESTS[t].neighbourhood), default=0)
        return widest if widest > self.config["metrics"]["k"] else None

    @cached_property
    def physics_layers_paths(self) -> list[str]:
        """The physics jobs' block-by-block records (``physics_per_block``), one file per embedding."""
        if not self.physics_per_block():
            return []
        return [self.run.PHYSICS_LAYERS.format(crossmatch=xm, survey=s, model=m) for xm, s, m in self.physics]

    @cached_property
    def physics_pairs(self) -> list[Comparison]:
        """Every compared pair given the physics tests of two embeddings (``physics_tests(pairs=True)``):
        the intramodal and crossmodal comparisons of the crossmatches with continuous probed properties."""
        if not self.physics_tests(pairs=True):
            return []
        return [c for c in self.comparisons if c.kind in PAIR_PHYSICS_KINDS and self.physics_properties(c.crossmatch)]

    @cached_property
    def physics_pair_paths(self) -> list[str]:
        return [self.run.PHYSICS_PAIR.format(**c.as_dict()) for c in self.physics_pairs]

    @cached_property
    def umap_maps(self) -> list[dict]:
        """Every embedding UMAP maps (probes.umap; rule umap, ``report.maps.write_umap_figures``):
        those with a continuous probed property, each with its files and those properties."""
        if not self.config["probes"]["umap"]:
            return []
        return [{"crossmatch": xm, "survey": s, "model": m,
                 "embedding": self.run.EMBEDDING.format(crossmatch=xm, survey=s, model=m),
                 "graph": self.run.KNN.format(crossmatch=xm, survey=s, model=m),
                 "sources": self.property_files(xm), "properties": self.physics_properties(xm)}
                for xm, s, m in self.embeddings if self.physics_properties(xm)]

    @property
    def umap_files(self) -> list[str]:
        """What the umap job reads: each mapped embedding, its kNN graph and its property files."""
        return sorted({path for m in self.umap_maps for path in (m["embedding"], m["graph"], *m["sources"])})

    def property_files(self, crossmatch: str) -> list[str]:
        """The files that hold a crossmatch's per-object properties (read by
        ``schema.read_properties``): its crossmatch file (catalogue columns) and, for a simulated
        crossmatch, its latent truth."""
        files = [self.crossmatch_path(crossmatch)]
        return files + [self.truth_path(crossmatch)] if "simulate" in self.source(crossmatch) else files

    def percentile_source(self, survey: str) -> str:
        chosen = self.config["preprocess"]["percentile_source"].get(survey)
        return chosen or next(xm for xm, spec in self.crossmatches.items() if survey in spec["surveys"])

    def source(self, crossmatch: str) -> dict:
        return self.crossmatches[crossmatch]["source"]

    @staticmethod
    def snapshot_dir(crossmatch: str) -> str:
        """Where a simulated crossmatch's Multimodal Universe-shaped snapshot is written."""
        return paths.SNAPSHOT.format(crossmatch=crossmatch)

    @staticmethod
    def truth_path(crossmatch: str) -> str:
        """A simulated crossmatch's latent truth, keyed by the crossmatch's object id."""
        return paths.TRUTH.format(crossmatch=crossmatch)

    def crossmatch_path(self, crossmatch: str) -> str:
        src = self.source(crossmatch)
        if "path" in src:
            return src["path"]
        return (paths.SIMULATED_CROSSMATCH if "simulate" in src else paths.CROSSMATCH).format(crossmatch=crossmatch)

    def layer_comparisons(self) -> list[Comparison]:
        """The pairs compared block by block when the embedding jobs write blocks (``embed.layers``
        not final): the paper's crossmodal and intramodal pairs, and every embedding against the
        latent truth (which has only its final block), on the crossmatches ``embed.layer_pairs``
        names per kind."""
        if self.layers() == "final":
            return []
        chosen = self.config["embed"]["layer_pairs"]  # kind -> "all" | [crossmatch, ...]; no self pairs
        return [c for c in self.comparisons
                if c.kind in chosen and (chosen[c.kind] == "all" or c.crossmatch in chosen[c.kind])]

    def layer_metric_files(self) -> list[str]:
        """The compare_layers jobs' per-pair CSVs (one row per metric and block pair)."""
        return [self.run.LAYER_METRICS.format(**c.as_dict()) for c in self.layer_comparisons()]

    def layer_inputs(self, crossmatch: str, survey_a: str, model_a: str, survey_b: str, model_b: str) -> dict:
        """The files of one compare_layers job: per side its final embedding and graph and, unless
        it is the latent truth, its layers file and block graphs."""
        inputs = {}
        for side, survey, model in (("a", survey_a, model_a), ("b", survey_b, model_b)):
            where = {"crossmatch": crossmatch, "survey": survey, "model": model}
            inputs.update({f"emb_{side}": self.run.EMBEDDING.format(**where),
                           f"knn_{side}": self.run.KNN.format(**where)})
            if survey != TRUTH_SURVEY:
                inputs.update({f"layers_{side}": self.run.LAYERS.format(**where),
                               f"knn_layers_{side}": self.run.KNN_LAYERS.format(**where)})
        return inputs
