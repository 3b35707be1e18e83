"""From a validated config to the exact set of jobs: one place that decides what runs.

The Snakefile only asks this module which embeddings, kNN graphs and comparisons exist and
which slice of the config each job depends on (its ``params``), so that editing one setting
reruns only the jobs that read it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import yaml

from . import paths
from .surveys import IMAGE, SPECTRUM, SURVEYS, get_survey

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


# Keys that were renamed: an old config gets an error naming the new key, not "unknown property".
RENAMED_KEYS = {"metrics.bootstrap_draws": "metrics.subsampling_splits"}


@dataclass(frozen=True)
class Comparison:
    kind: str  # intramodal | crossmodal | self
    crossmatch: str
    survey_a: str
    model_a: str
    survey_b: str
    model_b: str

    @property
    def path(self) -> str:
        return paths.METRICS.format(**self.as_dict())

    @property
    def layers_path(self) -> str:
        """The block x block scores of the pair (rule compare_layers)."""
        return paths.LAYER_METRICS.format(**self.as_dict())

    def as_dict(self) -> dict:
        return asdict(self)


TRUTH_SURVEY, TRUTH_MODEL = "truth", "latent-truth"  # a simulation's latent properties as a space


def comparison_kind(survey_a: str, model_a: str, survey_b: str, model_b: str) -> str:
    """self (a side against itself: the permutation-null column), intramodal, crossmodal, or
    truth (a side against the simulation's latent properties)."""
    if survey_b == TRUTH_SURVEY:
        return "truth"
    if survey_a == survey_b:
        return "self" if model_a == model_b else "intramodal"
    return "crossmodal"


def fill_defaults(config: dict) -> dict:
    """Check ``config`` in place against the JSON schema and fill its defaults (the one place for
    them); the semantic checks are the ``Plan``'s, made as it is built."""
    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    for old, new in RENAMED_KEYS.items():
        block, key = old.split(".")
        if key in (config.get(block) or {}):
            raise ConfigError(f"{old}: renamed {new} (what it counts); rename the key in your config")
    schema = yaml.safe_load(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.path)))
    if errors:
        lines = [f"{'.'.join(map(str, e.path)) or '(top level)'}: {e.message}" for e in errors[:5]]
        more = f"\n  ... and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise ConfigError(f"invalid configuration ({SCHEMA.name}):\n  " + "\n  ".join(lines) + more)
    try:
        validate(config, str(SCHEMA), set_default=True)  # fills the defaults
    except WorkflowError as err:
        raise ConfigError(f"invalid configuration: {err}") from None
    return config


def validate_config(config: dict) -> dict:
    """Validate ``config`` in place against the JSON schema (filling defaults), then semantically."""
    Plan(fill_defaults(config))  # semantic checks
    return config


def _registry():
    from .models import registry

    return registry


def _metric_names():
    from .metrics.registry import METRICS

    return METRICS


class Plan:
    """The jobs of a validated config (``validate_config`` fills every default from the schema,
    the one place for defaults: the plan reads keys, never falls back)."""

    def __init__(self, config: dict):
        self.config = config
        self.reference = config["reference_survey"]
        self.crossmatches: dict[str, dict] = config["crossmatches"]
        self._check_crossmatches()
        self.image_models = self._image_models()
        self.spectrum_model = self._spectrum_model()
        self._check_gpu_memory()
        self._check_preprocess()
        self._check_metrics()
        self._check_probes()

    # ---- validation -------------------------------------------------------------------
    def _check_crossmatches(self) -> None:
        for name, xm in self.crossmatches.items():
            for survey in xm["surveys"]:
                try:
                    get_survey(survey)
                except KeyError as err:
                    raise ConfigError(f"crossmatches.{name}.surveys: {err.args[0]}") from None
            if self.reference not in xm["surveys"]:
                raise ConfigError(
                    f"crossmatches.{name}.surveys: {xm['surveys']} does not include the "
                    f"reference survey {self.reference!r} (reference_survey)"
                )
            for survey, band in xm["drop_flat"].items():
                key = f"crossmatches.{name}.drop_flat.{survey}"
                if survey not in xm["surveys"] or get_survey(survey).modality != IMAGE:
                    raise ConfigError(f"{key}: {survey!r} is not an image survey of this crossmatch {xm['surveys']}")
                try:
                    get_survey(survey).band_index(band)
                except KeyError as err:
                    raise ConfigError(f"{key}: {err.args[0]}") from None
                if "path" in xm["source"]:
                    raise ConfigError(f"{key}: rows are dropped at ingestion; a 'path' source is not ingested")
            if "hf" in xm["source"] or "simulate" in xm["source"]:
                self.hf_source(name)  # checks the layout


    def _image_models(self) -> list[str]:
        registry = _registry()
        families = self.config["models"]["image"]
        keys = []
        for family, sizes in families.items():
            try:
                known = registry.family_sizes(family)
            except KeyError as err:
                raise ConfigError(f"models.image.{family}: {err.args[0]}") from None
            for i, size in enumerate(sizes):
                key = f"{family}-{size}"
                if size not in known:
                    raise ConfigError(
                        f"models.image.{family}[{i}]: unknown size {size!r}; known sizes: {list(known)}"
                    )
                if registry.get_model(key).modality != IMAGE:
                    raise ConfigError(f"models.image.{family}[{i}]: {key!r} is not an image model")
            # Sizes run in parameter order, whatever order the config lists them in.
            keys += [f"{family}-{s}" for s in known if s in sizes]
        return keys + self._untrained(keys)

    def _untrained(self, keys: list[str]) -> list[str]:
        """Untrained controls (``models.untrained``) of configured image models, as family@random keys."""
        registry = _registry()
        chosen = self.config["models"]["untrained"]
        families = {registry.get_model(k).family for k in keys}
        for i, name in enumerate(chosen):
            if name not in families and name not in keys:
                raise ConfigError(f"models.untrained[{i}]: {name!r} is not a configured image family or model; "
                                  f"configured: {sorted(families)} and {keys}")
        out = []
        for key in keys:
            family, _, size = key.rpartition("-")
            if family in chosen or key in chosen:
                out.append(f"{family}{registry.UNTRAINED}-{size}")
        return out

    def _check_gpu_memory(self) -> None:
        """Every model of a GPU run fits the GPU (embed.gpu_memory_gb), before any job."""
        embed = self.config["embed"]
        if embed["device"] == "cpu":
            return
        from .models.resources import check_fits_gpu

        for key in self.image_models + [self.spectrum_model] * bool(self.spectrum_model):
            try:
                check_fits_gpu(key, embed["gpu_memory_gb"])
            except ValueError as err:
                raise ConfigError(f"embed.gpu_memory_gb: {err}") from None

    def _spectrum_model(self) -> str | None:
        if not any(get_survey(s).modality == SPECTRUM for xm in self.crossmatches.values() for s in xm["surveys"]):
            return None
        key = self.config["models"]["spectrum"]
        try:
            spec = _registry().get_model(key)
        except KeyError as err:
            raise ConfigError(f"models.spectrum: {err.args[0]}") from None
        if spec.modality != SPECTRUM:
            raise ConfigError(f"models.spectrum: {key!r} is not a spectrum model")
        return key

    def _check_preprocess(self) -> None:
        pre = self.config["preprocess"]
        for survey, bands in pre["rgb"].items():
            try:
                s = get_survey(survey)
                for band in bands:
                    s.band_index(band)
            except KeyError as err:
                raise ConfigError(f"preprocess.rgb.{survey}: {err.args[0]}") from None
        for survey in pre["crop_pixels"]:
            if survey not in SURVEYS or get_survey(survey).modality != IMAGE:
                raise ConfigError(f"preprocess.crop_pixels.{survey}: not an image survey; image surveys: "
                                  f"{[k for k, v in SURVEYS.items() if v.modality == IMAGE]}")
        for survey, xm in pre["percentile_source"].items():
            if xm not in self.crossmatches or survey not in self.crossmatches[xm]["surveys"]:
                raise ConfigError(
                    f"preprocess.percentile_source.{survey}: {xm!r} is not a configured crossmatch containing {survey!r}"
                )
        lo, hi = pre["percentiles"]
        if not lo < hi:
            raise ConfigError(f"preprocess.percentiles: low {lo} must be below high {hi}")

    def _check_metrics(self) -> None:
        metrics = self.config["metrics"]
        known = _metric_names()
        for i, name in enumerate(metrics["names"]):
            if name not in known:
                raise ConfigError(f"metrics.names[{i}]: unknown metric {name!r}; known metrics: {sorted(known)}")
        for name, params in metrics["params"].items():
            if name not in known:
                raise ConfigError(f"metrics.params.{name}: unknown metric {name!r}; known metrics: {sorted(known)}")
            try:
                known[name].check_params(params, f"metrics.params.{name}")
            except ValueError as err:
                raise ConfigError(str(err)) from None
        null_xm = metrics["null_crossmatch"]
        if null_xm is not None and null_xm not in self.crossmatches:
            raise ConfigError(f"metrics.null_crossmatch: {null_xm!r} is not a configured crossmatch; known: {sorted(self.crossmatches)}")

    def _check_probes(self) -> None:
        chosen = self.config["probes"]["properties"]
        if isinstance(chosen, dict):
            for xm in chosen:
                if xm not in self.crossmatches:
                    raise ConfigError(f"probes.properties.{xm}: not a configured crossmatch; known: {sorted(self.crossmatches)}")
        probed = {name for xm in self.crossmatches for name in self.probe_properties(xm)}
        for i, name in enumerate(self.config["probes"]["categorical"]):
            if name not in probed:
                raise ConfigError(f"probes.categorical[{i}]: {name!r} is not among the probed properties {sorted(probed)}")

    # ---- what runs --------------------------------------------------------------------
    def models_for(self, survey: str) -> list[str]:
        """Models that embed ``survey``: the image models it supports, or the spectrum model."""
        if get_survey(survey).modality == SPECTRUM:
            return [self.spectrum_model]
        registry = _registry()
        return [k for k in self.image_models if registry.get_model(k).supports(survey)]

    @cached_property
    def embeddings(self) -> list[tuple[str, str, str]]:
        """Every (crossmatch, survey, model) embedding job."""
        return [
            (xm, survey, model)
            for xm, spec in self.crossmatches.items()
            for survey in spec["surveys"]
            for model in self.models_for(survey)
        ]

    @property
    def null_crossmatch(self) -> str:
        return self.config["metrics"]["null_crossmatch"] or next(iter(self.crossmatches))

    @cached_property
    def comparisons(self) -> list[Comparison]:
        registry = _registry()
        out: list[Comparison] = []
        for xm, spec in self.crossmatches.items():
            ref = self.reference
            others = [s for s in spec["surveys"] if s != ref]
            # intramodal: consecutive sizes of one family, within each image survey
            for survey in spec["surveys"]:
                if get_survey(survey).modality != IMAGE:
                    continue
                models = self.models_for(survey)
                for family in dict.fromkeys(registry.get_model(m).family for m in models):
                    sizes = [m for m in models if registry.get_model(m).family == family]
                    out += [Comparison("intramodal", xm, survey, a, survey, b) for a, b in zip(sizes, sizes[1:])]
            # crossmodal: each other survey against the reference, per image model on the reference
            for other in others:
                for model in self.models_for(ref):
                    other_model = model if get_survey(other).modality == IMAGE else self.spectrum_model
                    if other_model in self.models_for(other):
                        out.append(Comparison("crossmodal", xm, other, other_model, ref, model))
            if xm == self.null_crossmatch:
                out += [Comparison("self", xm, ref, m, ref, m) for m in self.models_for(ref)]
            # truth: every embedding of a simulated crossmatch against its latent properties
            if "simulate" in spec["source"]:
                out += [Comparison("truth", xm, survey, model, TRUTH_SURVEY, TRUTH_MODEL)
                        for survey in spec["surveys"] for model in self.models_for(survey)]
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
        return [paths.PROBE.format(crossmatch=xm, survey=s, model=m) for xm, s, m in self.probes]

    def property_files(self, crossmatch: str) -> list[str]:
        """The files that hold a crossmatch's per-object properties (read by
        ``schema.read_properties``): its crossmatch file (catalogue columns) and, for a simulated
        crossmatch, its latent truth."""
        files = [self.crossmatch_path(crossmatch)]
        return files + [self.truth_path(crossmatch)] if "simulate" in self.source(crossmatch) else files

    def percentile_source(self, survey: str) -> str:
        chosen = self.config["preprocess"]["percentile_source"].get(survey)
        return chosen or next(xm for xm, spec in self.crossmatches.items() if survey in spec["surveys"])

    # ---- config slices (rule params) --------------------------------------------------
    def source(self, crossmatch: str) -> dict:
        return self.crossmatches[crossmatch]["source"]

    def hf_source(self, crossmatch: str) -> dict:
        """The ingestion settings of a hub or snapshot crossmatch: {dataset, layout, id_column, limit, drop_flat}.

        A simulated crossmatch is a snapshot the workflow writes (``snapshot_dir``) in the layout
        of the hub crossmatch with the same surveys, ingested like any other.
        """
        from .ingest import HF_LAYOUTS, layout_for_surveys

        xm = self.crossmatches[crossmatch]
        surveys = xm["surveys"]
        if "simulate" in xm["source"]:
            layout = layout_for_surveys(surveys)
            if layout is None:
                raise ConfigError(f"crossmatches.{crossmatch}.source.simulate: surveys {surveys} have no Multimodal "
                                  f"Universe layout to simulate; layouts: "
                                  f"{ {k: sorted(v['columns']) for k, v in HF_LAYOUTS.items()} }")
            return {"dataset": self.snapshot_dir(crossmatch), "layout": layout,
                    "id_column": HF_LAYOUTS[layout]["object_id"][0], "limit": None,
                    "drop_flat": dict(xm["drop_flat"])}
        hf = dict(xm["source"]["hf"])
        key = f"crossmatches.{crossmatch}.source.hf"
        layout = hf["layout"]
        if layout is None:
            if hf["dataset"] not in HF_LAYOUTS:
                raise ConfigError(f"{key}.layout: required when dataset {hf['dataset']!r} is not a known hub id "
                                  f"(e.g. a local snapshot directory); one of {sorted(HF_LAYOUTS)}")
            layout = hf["dataset"]
        if layout not in HF_LAYOUTS:
            raise ConfigError(f"{key}.layout: unknown layout {layout!r}; known: {sorted(HF_LAYOUTS)}")
        if sorted(HF_LAYOUTS[layout]["columns"]) != sorted(surveys):
            raise ConfigError(f"{key}.layout: {layout!r} holds surveys {sorted(HF_LAYOUTS[layout]['columns'])}, "
                              f"but crossmatches.{crossmatch}.surveys is {surveys}")
        return {"dataset": hf["dataset"], "layout": layout,
                "id_column": hf["id_column"] or HF_LAYOUTS[layout]["object_id"][0], "limit": hf["limit"],
                "drop_flat": dict(xm["drop_flat"])}

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
        return src["path"] if "path" in src else paths.CROSSMATCH.format(crossmatch=crossmatch)

    def preprocess_params(self, survey: str) -> dict:
        """The preprocessing settings that affect ``survey`` (and nothing else)."""
        pre = self.config["preprocess"]
        if get_survey(survey).modality == SPECTRUM:
            return {"target_grid": "desi"}
        params = {
            "mode": pre["mode"],
            "rgb": list(pre["rgb"].get(survey) or get_survey(survey).rgb),  # unlisted: the survey's own
        }
        paper = params["mode"] == "paper"
        params.update(percentiles=list(pre["percentiles"]) if paper else [1, 99],
                      max_images=pre["max_images"], seed=pre["seed"],
                      sample=pre["percentile_sample"], source=self.percentile_source(survey),
                      crop=None if paper else pre["crop_pixels"].get(survey))  # unlisted: not cropped
        return params

    def weights_source(self, model: str) -> str:
        """Where the loader finds a model: its hub id, or a local directory of random weights
        (tiny ones, or an untrained control's, whose path carries its seed)."""
        if model != _registry().trained_key(model):
            return paths.RANDOM_MODEL.format(seed=self.config["models"]["untrained_seed"], model=model)
        if self.config["models"]["weights"] == "tiny":
            return paths.TINY_MODEL.format(model=model)
        return _registry().get_model(model).hub_id

    def untrained_full_size(self) -> bool:
        """Untrained controls have the real architecture, or the tiny one when every model is tiny."""
        return self.config["models"]["weights"] != "tiny"

    def embed_params(self) -> dict:
        """Settings that can change embeddings. Batch and shard sizes only change throughput:
        the job reads them from the config, so changing them does not rerun anything."""
        embed = self.config["embed"]
        return {"device": embed["device"], "precision": embed["precision"]}

    def layers(self) -> str | list[int]:
        """Blocks whose outputs the embedding jobs also write: 'final' (none), 'all' or indices."""
        return self.config["embed"]["layers"]

    def layer_comparisons(self) -> list[Comparison]:
        """The pairs compared block by block when the embedding jobs write blocks (``embed.layers``
        not final): the paper's crossmodal and intramodal pairs, and every embedding against the
        latent truth (which has only its final block)."""
        if self.layers() == "final":
            return []
        return [c for c in self.comparisons if c.kind in ("crossmodal", "intramodal", "truth")]

    def layer_metric_files(self) -> list[str]:
        """The compare_layers jobs' per-pair CSVs (one row per metric and block pair)."""
        return [c.layers_path for c in self.layer_comparisons()]

    def layer_inputs(self, crossmatch: str, survey_a: str, model_a: str, survey_b: str, model_b: str) -> dict:
        """The files of one compare_layers job: per side its final embedding and graph and, unless
        it is the latent truth, its layers file and block graphs."""
        inputs = {}
        for side, survey, model in (("a", survey_a, model_a), ("b", survey_b, model_b)):
            where = {"crossmatch": crossmatch, "survey": survey, "model": model}
            inputs.update({f"emb_{side}": paths.EMBEDDING.format(**where), f"knn_{side}": paths.KNN.format(**where)})
            if survey != TRUTH_SURVEY:
                inputs.update({f"layers_{side}": paths.LAYERS.format(**where),
                               f"knn_layers_{side}": paths.KNN_LAYERS.format(**where)})
        return inputs

    def layer_params(self) -> dict:
        """The settings of the compare_layers jobs (the final x final cell is the compare job's
        without intervals: ci and bootstrap draws do not reach them)."""
        p = self.metric_params()
        return {key: p[key] for key in ("metrics", "k", "null_draws", "seed", "alpha", "cka_null",
                                        "feature_space_draws", "params")}

    def layer_invariants(self) -> bool:
        """Whether the knn_layers jobs cache Gram invariants: layer-wise CKA nulls are always in
        closed form (a feature-space draw per block pair is what the stage avoids)."""
        return any(m.startswith("cka") for m in self.metric_params()["metrics"])

    def embed_throughput(self) -> dict:
        embed = self.config["embed"]
        return {"batch_size": embed["batch_size"], "shard_size": embed["shard_size"]}

    def knn_params(self) -> dict:
        """Settings of the kNN graph jobs (the compare jobs do not depend on the precision)."""
        m = self.config["metrics"]
        return {"k": m["k"], "precision": m["knn_precision"]}

    def metric_params(self) -> dict:
        m = self.config["metrics"]
        names = list(m["names"])
        return {"metrics": names,
                **{key: m[key] for key in ("k", "null_draws", "feature_space_draws", "ci", "alpha", "cka_null",
                                           "seed")},
                "bootstrap_draws": m["subsampling_splits"],  # compare_files' keyword for the splits
                "params": self._tunable_params(names)}

    def _tunable_params(self, names: list[str]) -> dict[str, dict]:
        """Per metric of ``names``, its parameters other than the shared k: the registry's defaults
        (``Metric.defaults``) updated by config ``metrics.params``. Metrics not run, or without
        such parameters, are left out, so editing them reruns nothing."""
        given, out = self.config["metrics"]["params"], {}
        for name in names:
            values = {key: v for key, v in _metric_names()[name].defaults.items() if key != "k"}
            values.update(given.get(name, {}))
            if values:
                out[name] = values
        return out

    def cka_invariants(self) -> bool:
        """Whether the knn_graph rule caches each file's Gram invariants (closed-form CKA null)."""
        p = self.metric_params()
        return p["cka_null"] == "closed_form" and any(m.startswith("cka") for m in p["metrics"])

    def probe_params(self, crossmatch: str) -> dict:
        """Every setting of the probes of ``crossmatch`` (and nothing else): editing the probes
        reruns only probes, and editing one crossmatch's properties only that crossmatch's."""
        p = self.config["probes"]
        properties = self.probe_properties(crossmatch)
        return {"properties": properties,
                "categorical": [name for name in p["categorical"] if name in properties],
                **{key: p[key] for key in ("folds", "pca_components", "knn_k", "null_draws",
                                           "bootstrap_draws", "ci", "seed")}}

    def graph_width(self) -> int:
        """Columns of the cached kNN graphs: k, or enough for cheap subsampling intervals
        (``metrics.registry.graph_width``) when neighbourhood metrics draw intervals."""
        from .metrics.registry import graph_width

        m = self.config["metrics"]
        local = any(_metric_names()[name].uses_knn for name in m["names"])
        return graph_width(m["k"]) if local and m["subsampling_splits"] else m["k"]


def load_config_file(path: str | Path) -> dict:
    """Read and validate a YAML config file (for tools and tests outside Snakemake)."""
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    return validate_config(config)
