"""Rule params: the slice of a validated config that each rule's jobs depend on, and nothing
more, so that editing one setting reruns only the jobs that read it (Snakemake compares params).

The schema holds every default it can state. The few that depend on other keys are derived here,
each where its rule reads it: a survey's RGB bands (the survey's own unless ``preprocess.rgb``
names them), its crop (none unless ``preprocess.crop_pixels`` names it), a hub layout's id
column (the layout's unless given) and a simulated crossmatch's snapshot layout (the hub layout
with the same surveys).
"""
from __future__ import annotations

from . import paths
from .config import ConfigError, _metric_names, _registry
from .surveys import SPECTRUM, get_survey


class RuleParams:
    """Config slices handed to the rules as ``params`` (a mixin of ``Plan``)."""

    config: dict
    crossmatches: dict[str, dict]

    def hf_source(self, crossmatch: str) -> dict:
        """The ingestion settings of a hub or snapshot crossmatch: {dataset, layout, id_column, limit, drop_flat}.

        A simulated crossmatch is a snapshot the workflow writes (``snapshot_dir``) in the layout
        of the hub crossmatch with the same surveys, ingested like any other.
        """
        from .surveys import LAYOUTS, layout_for_surveys

        xm = self.crossmatches[crossmatch]
        surveys = xm["surveys"]
        if "simulate" in xm["source"]:
            layout = layout_for_surveys(surveys, simulable=True)
            if layout is None:
                raise ConfigError(f"crossmatches.{crossmatch}.source.simulate: surveys {surveys} have no layout to "
                                  f"simulate; layouts: "
                                  f"{ {k: sorted(v.surveys) for k, v in LAYOUTS.items() if v.simulable} }")
            return {"dataset": self.snapshot_dir(crossmatch), "layout": layout,
                    "id_column": next(iter(LAYOUTS[layout].object_id), None), "limit": None,
                    "drop_flat": dict(xm["drop_flat"])}
        hf = dict(xm["source"]["hf"])
        key = f"crossmatches.{crossmatch}.source.hf"
        layout = hf["layout"]
        if layout is None:
            if hf["dataset"] not in LAYOUTS:
                raise ConfigError(f"{key}.layout: required when dataset {hf['dataset']!r} is not a known hub id "
                                  f"(e.g. a local snapshot directory); one of {sorted(LAYOUTS)}")
            layout = hf["dataset"]
        if layout not in LAYOUTS:
            raise ConfigError(f"{key}.layout: unknown layout {layout!r}; known: {sorted(LAYOUTS)}")
        if sorted(LAYOUTS[layout].surveys) != sorted(surveys):
            raise ConfigError(f"{key}.layout: {layout!r} holds surveys {sorted(LAYOUTS[layout].surveys)}, "
                              f"but crossmatches.{crossmatch}.surveys is {surveys}")
        return {"dataset": hf["dataset"], "layout": layout,
                "id_column": hf["id_column"] or next(iter(LAYOUTS[layout].object_id), None), "limit": hf["limit"],
                "drop_flat": dict(xm["drop_flat"])}

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

    def keep_layers(self) -> bool:
        """Whether the layers files stay once their block graphs and cells are made (embed.keep_layers)."""
        return self.config["embed"]["keep_layers"]

    def layer_params(self) -> dict:
        """The settings of the compare_layers jobs (the final x final cell is the compare job's
        without intervals: ci and subsampling splits do not reach them)."""
        p = self.metric_params()
        return {key: p[key] for key in ("metrics", "k", "null_draws", "seed", "alpha", "cka_null",
                                        "feature_space_draws", "params")}

    def layer_invariants(self) -> bool:
        """Whether the knn_graph jobs cache each block graph's Gram invariants: layer-wise CKA nulls
        are always in closed form (a feature-space draw per block pair is what the stage avoids)."""
        return any(_metric_names()[m].uses_gram_invariants for m in self.metric_params()["metrics"])

    def summary_params(self) -> dict:
        """What the run's summary page says it was (rule summary; ``report.summary``): its name,
        crossmatches with their sources and image models, models, metrics, k and draws, and the
        marking every figure carries (``report_facts``). Nothing else reruns it."""
        m, models = self.config["metrics"], self.config["models"]
        return {"run_name": self.config["run_name"], "reference_survey": self.config["reference_survey"],
                "crossmatches": {name: {**{key: spec[key] for key in ("surveys", "source", "drop_flat")},
                                        "image_models": self.crossmatch_models[name]}
                                 for name, spec in self.crossmatches.items()},
                "models": {"image": list(self.image_models), "spectrum": self.spectrum_model,
                           "weights": models["weights"]},
                "metrics": {key: m[key] for key in ("names", "k", "null_draws", "subsampling_splits")},
                "marking": self.report_facts("figures")}

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
                **{key: m[key] for key in ("k", "null_draws", "subsampling_splits", "feature_space_draws", "ci",
                                           "alpha", "cka_null", "seed")},
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
        """Whether the knn_graph jobs cache each final graph's Gram invariants (closed-form CKA null)."""
        p = self.metric_params()
        return p["cka_null"] == "closed_form" and any(_metric_names()[m].uses_gram_invariants for m in p["metrics"])

    def probe_params(self, crossmatch: str) -> dict:
        """Every setting of the probes of ``crossmatch`` (and nothing else): editing the probes
        reruns only probes, and editing one crossmatch's properties only that crossmatch's."""
        p = self.config["probes"]
        properties = self.probe_properties(crossmatch)
        return {"properties": properties,
                "categorical": [name for name in p["categorical"] if name in properties],
                **{key: p[key] for key in ("folds", "pca_components", "knn_k", "null_draws",
                                           "bootstrap_draws", "ci", "seed")}}

    def physics_params(self, crossmatch: str, pairs: bool = False) -> dict:
        """Every setting of the physics tests of ``crossmatch`` (probes.physics, the probes' ci and
        seed, its continuous probed properties) run per embedding, or with ``pairs`` per compared
        pair (``physics_tests``): editing them reruns only the physics (or physics_pair) jobs."""
        p, phys = self.config["probes"], self.config["probes"]["physics"]
        tests = self.physics_tests(pairs)
        return {"properties": self.physics_properties(crossmatch), "tests": tests,
                "params": {name: dict(phys["params"][name]) for name in tests if name in phys["params"]},
                **{key: phys[key] for key in ("null_draws", "subsampling_splits", "alpha")},
                **{key: p[key] for key in ("ci", "seed")}}

    def umap_params(self) -> dict:
        """The UMAP maps' settings (probes.umap): the kNN purity's k and bins (probes.physics.params.
        knn_purity over the reference's), also UMAP's n_neighbors, and the probes' seed."""
        from .physics import params_of

        purity = params_of("knn_purity", self.config["probes"]["physics"]["params"].get("knn_purity"))
        return {"k": purity["k"], "n_bins": purity["n_bins"], "seed": self.config["probes"]["seed"]}

    def report_facts(self, stage: str) -> dict:
        """What the report rules tell every reader (``report.captions.RunFacts``): the simulated
        crossmatches (source: simulate) and whether the models are random-weight miniatures
        (models.weights: tiny), on every figure and table; the interval level and the splits asked
        for the 'tables' (the metrics') or the level for the 'probes'; 'figures' get the marking only."""
        facts = {"simulated": [xm for xm, spec in self.crossmatches.items() if "simulate" in spec["source"]],
                 "miniature": self.config["models"]["weights"] == "tiny"}
        if stage == "tables":
            m = self.config["metrics"]
            facts.update(ci=m["ci"], subsampling_splits=m["subsampling_splits"],
                         feature_space_draws=m["feature_space_draws"])
        elif stage == "probes":
            facts["ci"] = self.config["probes"]["ci"]
        elif stage != "figures":
            raise ValueError(f"report stage must be 'tables', 'probes' or 'figures', got {stage!r}")
        return facts

    def graph_width(self) -> int:
        """Columns of the cached kNN graphs: k, or enough for cheap subsampling intervals
        (``metrics.registry.graph_width``) when neighbourhood metrics draw intervals."""
        from .metrics.registry import cached_graph_width

        m = self.config["metrics"]
        return cached_graph_width(m["names"], m["k"], m["subsampling_splits"])
