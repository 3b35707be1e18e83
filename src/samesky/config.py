"""A config checked before any job runs: the JSON schema (workflow/schemas/config.schema.yaml),
which fills every default it can state, then the semantic checks of ``ConfigChecks`` (names that
must exist in the registries, crossmatches and surveys that must agree). Every error is a
``ConfigError`` whose message begins with the offending key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping

import yaml

from . import schema
from .surveys import IMAGE, SPECTRUM, SURVEYS, get_survey

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


# Keys that were renamed: an old config gets an error naming the new key, not "unknown property".
RENAMED_KEYS = {"metrics.bootstrap_draws": "metrics.subsampling_splits"}


def fill_defaults(config: dict) -> dict:
    """Check ``config`` in place against the JSON schema and fill the defaults it states (renamed
    keys are refused by their new names first); the semantic checks (``ConfigChecks``) run as a
    ``Plan`` is built."""
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
    """Validate ``config`` in place against the JSON schema (filling defaults), then semantically
    (building its ``Plan`` runs the checks; the Snakefile builds its one Plan the same way)."""
    from .plan import Plan

    Plan(fill_defaults(config))
    return config


PLACEHOLDER = "CHANGE_ME"  # profiles/slurm's values for the user to edit


def check_profile_resources(default_resources: Mapping[str, object],
                            set_resources: Mapping[str, Mapping[str, object]]) -> None:
    """No resource of the profile (its ``default-resources`` and ``set-resources``, as given:
    ``{name: value}`` and ``{rule: {name: value}}``) is still a placeholder: a job submitted with
    it would fail at the scheduler (an unknown account or partition), after the run has begun."""
    given = {f"default-resources.{name}": value for name, value in default_resources.items()}
    given.update({f"set-resources.{rule}.{name}": value
                  for rule, values in set_resources.items() for name, value in values.items()})
    for key, value in given.items():
        if isinstance(value, str) and PLACEHOLDER in value:
            raise ConfigError(f"{key}: {value!r} is a placeholder; set it in your profile to your cluster's "
                              f"value (profiles/slurm/config.yaml: account and partitions), or remove the key")


def _registry():
    from .models import registry

    return registry


def _metric_names():
    from .metrics.registry import METRICS

    return METRICS


class ConfigChecks:
    """The semantic checks of a schema-filled config, and the model lists they resolve (the image
    models in parameter order with their untrained controls, the spectrum model): ``Plan`` runs
    them as it is built."""

    config: dict
    reference: str
    crossmatches: dict[str, dict]

    def _check_crossmatches(self) -> None:
        for name, xm in self.crossmatches.items():
            for survey in xm["surveys"]:
                try:
                    get_survey(survey)
                except KeyError as err:
                    raise ConfigError(f"crossmatches.{name}.surveys: {err.args[0]}") from None
            if self.reference_of(name) not in xm["surveys"]:
                key = "reference" if xm.get("reference") else "reference_survey"
                raise ConfigError(
                    f"crossmatches.{name}.surveys: {xm['surveys']} does not include the "
                    f"reference survey {self.reference_of(name)!r} ({key})"
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


    def reference_of(self, crossmatch: str) -> str:
        """The survey ``crossmatch``'s crossmodal comparisons are made against: its own
        ``reference``, else ``reference_survey``."""
        return self.crossmatches[crossmatch].get("reference") or self.reference

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

    def _crossmatch_image_models(self, crossmatch: str) -> list[str]:
        """The image models run on ``crossmatch``, checked: those its ``image_models`` names, by
        family or model key, in ``image_models``' order; all of them when it names none."""
        chosen = self.crossmatches[crossmatch].get("image_models")
        if chosen is None:
            return self.image_models
        registry = _registry()
        families = {registry.get_model(k).family for k in self.image_models}
        for i, name in enumerate(chosen):
            if name not in families and name not in self.image_models:
                raise ConfigError(f"crossmatches.{crossmatch}.image_models[{i}]: {name!r} is not a configured image "
                                  f"family or model; configured: {sorted(families)} and {self.image_models}")
        return [k for k in self.image_models if k in chosen or registry.get_model(k).family in chosen]

    def _check_layer_pairs(self) -> None:
        for kind, chosen in self.config["embed"]["layer_pairs"].items():
            for i, name in enumerate([] if chosen == "all" else chosen):
                if name not in self.crossmatches:
                    raise ConfigError(f"embed.layer_pairs.{kind}[{i}]: {name!r} is not a crossmatch of this config; "
                                      f"crossmatches: {list(self.crossmatches)}")

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
        for xm in self.crossmatches:
            self._check_probe_properties(xm)
        probed = {name for xm in self.crossmatches for name in self.probe_properties(xm)}
        for i, name in enumerate(self.config["probes"]["categorical"]):
            if name not in probed:
                raise ConfigError(f"probes.categorical[{i}]: {name!r} is not among the probed properties {sorted(probed)}")
        self._check_physics()

    def _check_physics(self) -> None:
        """probes.physics: its parameters are the tests' own (``physics.params_of``) for tests that
        run, a neighbourhood test's k fits the cached kNN graph and, with subsampling intervals, a
        quarter of each crossmatch of known size, and the joint overlap has at least two
        continuous properties on every crossmatch it runs on."""
        phys = self.config["probes"]["physics"]
        tests = phys["tests"]
        umap = self.config["probes"]["umap"]  # its kNN purity takes knn_purity's parameters
        for name in phys["params"]:
            if name not in tests and not (umap and name == "knn_purity"):
                raise ConfigError(f"probes.physics.params.{name}: {name!r} is not among probes.physics.tests {tests}")
        if not tests and not umap:
            return
        from .physics import TESTS, PhysicsError, params_of  # scikit-learn loads only when physics runs

        width = self.graph_width()
        if umap:
            self._check_umap(params_of("knn_purity", phys["params"].get("knn_purity"))["k"], width)
        for name in tests:
            try:
                chosen = params_of(name, phys["params"].get(name))
            except PhysicsError as err:
                raise ConfigError(f"probes.physics.params.{name}: {err}") from None
            if TESTS[name].neighbourhood and chosen["k"] > width:
                raise ConfigError(f"probes.physics.params.{name}.k: {chosen['k']} neighbours, but the cached kNN graphs "
                                  f"hold {width} per object (metrics.k and metrics.subsampling_splits set their width)")
            if not (TESTS[name].neighbourhood and phys["subsampling_splits"]):
                continue
            for xm in self.crossmatches:
                size = self._crossmatch_size(xm) if self.physics_properties(xm) else None
                if size is not None and not size[0] > 4 * chosen["k"]:
                    raise ConfigError(f"probes.physics.params.{name}.k: {chosen['k']} neighbours do not fit a quarter of "
                                      f"crossmatch {xm!r} of at most {size[0]} objects ({size[1]}), which its subsampling "
                                      f"interval rescores (probes.physics.subsampling_splits); k must be below "
                                      f"{size[0] / 4:g}")
        if "joint_neighbour_set_overlap" in tests:
            for xm in self.crossmatches:
                props = self.physics_properties(xm)
                if len(props) == 1:
                    raise ConfigError(f"probes.physics.tests: joint_neighbour_set_overlap needs at least two continuous "
                                      f"probed properties; crossmatch {xm!r} has {props}")

    def _check_umap(self, k: int, width: int) -> None:
        """probes.umap: its k (knn_purity's, probes.physics.params) fits the cached kNN graph and
        is below the size of every crossmatch it maps whose size is known."""
        if k > width:
            raise ConfigError(f"probes.umap: its k={k} (probes.physics.params.knn_purity.k) neighbours, but the cached "
                              f"kNN graphs hold {width} per object (metrics.k and metrics.subsampling_splits set their "
                              "width)")
        for xm in self.crossmatches:
            size = self._crossmatch_size(xm) if self.physics_properties(xm) else None
            if size is not None and not size[0] > k:
                raise ConfigError(f"probes.umap: its k={k} (probes.physics.params.knn_purity.k) neighbours do not fit "
                                  f"crossmatch {xm!r} of at most {size[0]} objects ({size[1]})")

    def _check_probe_properties(self, crossmatch: str) -> None:
        """Each probed property of ``crossmatch`` is one its files will hold, where that is known
        before ingestion (``_property_columns``)."""
        names = self.probe_properties(crossmatch)
        missing = list(names)
        for columns in self._property_columns(crossmatch):
            if columns is None:
                return
            missing = [name for name in missing if name not in columns]
            if not missing:
                return
        chosen = self.config["probes"]["properties"]
        key = f"probes.properties.{crossmatch}" if isinstance(chosen, dict) else "probes.properties"
        known = sorted({name for columns in self._property_columns(crossmatch) for name in columns})
        raise ConfigError(f"{key}[{names.index(missing[0])}]: crossmatch {crossmatch!r} has no property "
                          f"{missing[0]!r}; its properties: {known}")

    def _property_columns(self, crossmatch: str) -> Iterator[list[str] | None]:
        """The per-object properties ``crossmatch`` will have (what ``schema.read_properties``
        reads), in groups, cheapest first: for a simulation its latent truth, then (as for a hub
        or snapshot source) the catalogue columns its Multimodal Universe layout declares that
        ``ingest`` keeps (scalars other than ids and coordinates), or another layout's
        ``catalogue`` (a hub table may hold more: None after it); for a crossmatch file its own
        properties, or None while the file does not exist."""
        source = self.crossmatches[crossmatch]["source"]
        if "path" in source:
            path = Path(source["path"])
            yield schema.property_names(path) if path.is_file() else None
            return
        if "simulate" in source:
            from .latent_keys import truth_keys

            yield truth_keys(self.crossmatches[crossmatch]["surveys"])
        from . import mmu
        from .ingest import scalar_columns
        from .surveys import get_layout

        hf = self.hf_source(crossmatch)
        layout = get_layout(hf["layout"])
        if layout.mmu is None:  # not a Multimodal Universe table: the catalogue columns it is known to hold
            yield list(layout.catalogue) or None
            if "simulate" not in source:  # and, until ingestion, perhaps others
                yield None
            return
        exclude = {hf["id_column"], *layout.ra, *layout.dec, *(c for ids in layout.survey_ids.values() for c in ids)}
        yield scalar_columns(mmu.crossmatch_features(hf["layout"]), exclude=exclude)

    def _crossmatch_size(self, crossmatch: str) -> tuple[int, str] | None:
        """At most how many objects ``crossmatch`` will hold, and the key that says so: a
        simulation's n, a hub source's limit, a crossmatch file's rows (ingestion only drops
        rows); None when not known before ingestion."""
        source, key = self.crossmatches[crossmatch]["source"], f"crossmatches.{crossmatch}.source"
        if "simulate" in source:
            return source["simulate"]["n"], f"{key}.simulate.n"
        if "hf" in source:
            return (source["hf"]["limit"], f"{key}.hf.limit") if source["hf"]["limit"] else None
        if Path(source["path"]).is_file():
            with schema.read_h5(source["path"]) as f:
                return len(f["object_id"]), f"{key}.path"
        return None

    def _check_neighbourhoods(self) -> None:
        """Every neighbourhood fits each crossmatch whose size is known: metrics.k (the kNN
        graphs, below n; below a quarter of n when neighbourhood metrics draw subsampling
        intervals, which rescore quarters; every metric that takes k takes this one) and the kNN
        probe's k (below the smallest training fold, as ``probes.probe`` requires). The graphs'
        width beyond k is capped at n - 1 where they are built (``knn.knn_file``)."""
        metrics, probes = self.config["metrics"], self.config["probes"]
        specs = [_metric_names()[name] for name in metrics["names"]]
        quarters = metrics["subsampling_splits"] and any(spec.interval == "subsampling_knn" for spec in specs)
        k = metrics["k"]
        for xm in self.crossmatches:
            size = self._crossmatch_size(xm)
            if size is None:
                continue
            n, where = size
            if k > n - 1:
                raise ConfigError(f"metrics.k: {k} neighbours do not fit crossmatch {xm!r} of at most {n} objects "
                                  f"({where}); k must be at most {n - 1}")
            if quarters and not n > 4 * k:
                raise ConfigError(f"metrics.k: {k} neighbours do not fit a quarter of crossmatch {xm!r} of at most "
                                  f"{n} objects ({where}), which the subsampling intervals of "
                                  f"{[s.name for s in specs if s.interval == 'subsampling_knn']} rescore "
                                  f"(metrics.subsampling_splits); k must be below {n / 4:g}")
            if self.probe_properties(xm):
                n_train = n - -(-n // probes["folds"])  # the smallest training fold
                if probes["knn_k"] >= n_train:
                    raise ConfigError(f"probes.knn_k: {probes['knn_k']} neighbours do not fit the smallest training "
                                      f"fold ({n_train} objects of {probes['folds']} folds, probes.folds) of "
                                      f"crossmatch {xm!r} of at most {n} objects ({where}); must be below {n_train}")
