"""The job plan: which embeddings and comparisons exist, and config errors that name the key."""
import copy
import re
from pathlib import Path

import pytest
import yaml

from samesky.config import ConfigError, validate_config
from samesky.plan import Plan

PAPER_IMAGE_MODELS = {
    "astropt": ["small", "base", "large"],
    "convnextv2": ["nano", "tiny", "base", "large"],
    "dinov2": ["small", "base", "large", "giant"],
    "ijepa": ["huge", "giant"],
    "vit": ["base", "large", "huge"],
}


def test_paper_plan_embeds_every_family_size_survey(paper_config):
    plan = Plan(validate_config(paper_config))
    image_models = [f"{f}-{s}" for f, sizes in PAPER_IMAGE_MODELS.items() for s in sizes]
    assert sorted(plan.image_models) == sorted(image_models)
    expected = {(xm, s, m) for xm in ("jwst_hsc", "legacysurvey_hsc", "desi_hsc", "sdss_hsc")
                for s in ("hsc",) for m in image_models}
    expected |= {("jwst_hsc", "jwst", m) for m in image_models}
    expected |= {("legacysurvey_hsc", "legacysurvey", m) for m in image_models}
    expected |= {("desi_hsc", "desi", "specformer-base"), ("sdss_hsc", "sdss", "specformer-base")}
    assert set(plan.embeddings) == expected
    assert len(plan.embeddings) == len(expected) == 16 * 6 + 2


def test_paper_plan_comparisons(paper_config):
    plan = Plan(validate_config(paper_config))
    kinds = [c.kind for c in plan.comparisons]
    # Table 1: (2 + 3 + 3 + 1 + 2) consecutive pairs per image survey; 6 image (crossmatch, survey) pairs
    assert kinds.count("intramodal") == 11 * 6
    # Table 2: 16 image models x 4 crossmatches; the null column: 16 self pairs on DESI-HSC
    assert kinds.count("crossmodal") == 16 * 4
    assert kinds.count("self") == 16
    dinov2 = [c for c in plan.comparisons if c.kind == "intramodal" and c.model_a.startswith("dinov2")
              and c.crossmatch == "jwst_hsc" and c.survey_a == "jwst"]
    assert [(c.model_a, c.model_b) for c in dinov2] == [
        ("dinov2-small", "dinov2-base"), ("dinov2-base", "dinov2-large"), ("dinov2-large", "dinov2-giant")]
    spec = [c for c in plan.comparisons if c.kind == "crossmodal" and c.crossmatch == "desi_hsc"]
    assert {c.model_a for c in spec} == {"specformer-base"} and len(spec) == 16
    assert all(c.survey_b == "hsc" for c in plan.comparisons if c.kind == "crossmodal")
    assert {c.crossmatch for c in plan.comparisons if c.kind == "self"} == {"desi_hsc"}


def test_sizes_run_in_parameter_order_whatever_the_config_order(paper_config):
    paper_config["models"]["image"] = {"vit": ["huge", "base", "large"]}
    plan = Plan(validate_config(paper_config))
    assert plan.image_models == ["vit-base", "vit-large", "vit-huge"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["models"]["image"].update(vitt=["base"]), "models.image.vitt"),
        (lambda c: c["models"]["image"]["vit"].append("gigantic"), "models.image.vit[3]: unknown size 'gigantic'"),
        (lambda c: c["metrics"].update(k=-1), "k"),
        (lambda c: c["metrics"].update(names=["mknn", "cka_bogus"]), "metrics.names[1]: unknown metric 'cka_bogus'"),
        (lambda c: c.pop("crossmatches"), "crossmatches"),
        (lambda c: c["crossmatches"]["jwst_hsc"].update(surveys=["jwst", "euclid"]), "euclid"),
        (lambda c: c["crossmatches"]["jwst_hsc"].update(surveys=["jwst", "legacysurvey"]),
         "crossmatches.jwst_hsc.surveys"),
        (lambda c: c["preprocess"]["rgb"].update(hsc=["z", "r", "u"]), "preprocess.rgb.hsc: survey 'hsc' has no band 'u'"),
        (lambda c: c["preprocess"].update(percentiles=[99, 5]), "preprocess.percentiles"),
        (lambda c: c["preprocess"]["percentile_source"].update(hsc="nope"), "preprocess.percentile_source.hsc"),
        (lambda c: c["metrics"].update(null_crossmatch="nope"), "metrics.null_crossmatch"),
        (lambda c: c["models"].update(spectrum="vit-base"), "models.spectrum"),
        (lambda c: c["embed"].update(batch_size=0), "batch_size"),
        (lambda c: c["metrics"].update(feature_space_draws=-1), "metrics.feature_space_draws"),
        (lambda c: c["metrics"].update(alpha=1.0), "metrics.alpha"),
        (lambda c: c["metrics"].update(params={"mutual_inf": {"components": 8}}),
         "metrics.params.mutual_inf: unknown metric 'mutual_inf'; known metrics: ['cka_linear'"),
        (lambda c: c["metrics"].update(params={"mutual_info": {"n_components": 8}}),
         "metrics.params.mutual_info.n_components: metric 'mutual_info' has no parameter 'n_components'; "
         "its parameters are ['components']"),
        (lambda c: c["metrics"].update(params={"mutual_info": {"components": 8.5}}),
         "metrics.params.mutual_info.components: expected int, got 8.5"),
        (lambda c: c["metrics"].update(params={"mutual_info": {"components": True}}),
         "metrics.params.mutual_info.components: expected int, got True"),
        (lambda c: c["metrics"].update(params={"mknn": {"k": 20}}), "metrics.params.mknn.k: the neighbourhood size is "
         "shared by every kNN metric and the cached graphs: set metrics.k"),
        (lambda c: c["metrics"].update(params={"mknn": {"components": 8}}),
         "metrics.params.mknn.components: metric 'mknn' has no parameter 'components'; its parameters are []"),
        (lambda c: c["metrics"].update(params={"mutual_info": 8}), "metrics.params.mutual_info"),
        # optional settings (None by default): a positive value of the declared type, or null
        (lambda c: c["metrics"]["params"].update(cka_rbf={"median_sample": 0}),
         "metrics.params.cka_rbf.median_sample: expected a positive int or null, got 0"),
        (lambda c: c["metrics"]["params"].update(rsa={"sample_pairs": 1e6}),
         "metrics.params.rsa.sample_pairs: expected int or null, got 1000000.0"),
        (lambda c: c["metrics"]["params"].update(cka_rbf={"gamma": "auto"}),
         "metrics.params.cka_rbf.gamma: expected float or null, got 'auto'"),
        (lambda c: c["crossmatches"]["jwst_hsc"].update(image_models=["vit", "dino"]),
         "crossmatches.jwst_hsc.image_models[1]: 'dino' is not a configured image family or model; configured: "),
        (lambda c: c["crossmatches"]["jwst_hsc"].update(image_models=["vit@random"]),  # no untrained control configured
         "crossmatches.jwst_hsc.image_models[0]: 'vit@random' is not a configured image family or model"),
        (lambda c: c["embed"].update(layer_pairs={"truth": ["desi"]}),
         "embed.layer_pairs.truth[0]: 'desi' is not a crossmatch of this config; crossmatches: ['jwst_hsc', "),
        (lambda c: c["embed"].update(layer_pairs={"self": "all"}), "embed.layer_pairs"),
        (lambda c: c["embed"].update(layer_pairs={"truth": "some"}), "embed.layer_pairs.truth"),
    ],
)
def test_invalid_config_names_the_key(paper_config, edit, message):
    edit(paper_config)
    with pytest.raises(ConfigError) as err:
        validate_config(paper_config)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["probes"].update(properties={"desi_hsc": ["redshift", "redshfit"]}),
         "probes.properties.desi_hsc[1]: crossmatch 'desi_hsc' has no property 'redshfit'; its properties: ["),
        (lambda c: c["probes"].update(properties=["redshift", "Z"]),  # a DESI column: not on JWST-HSC
         "probes.properties[1]: crossmatch 'jwst_hsc' has no property 'Z'; its properties: ['a_v', "),
        (lambda c: c["metrics"].update(k=200),
         "metrics.k: 200 neighbours do not fit crossmatch 'jwst_hsc' of at most 200 objects "
         "(crossmatches.jwst_hsc.source.simulate.n); k must be at most 199"),
        (lambda c: c["metrics"].update(k=50), "metrics.k: 50 neighbours do not fit a quarter of crossmatch 'jwst_hsc' "
         "of at most 200 objects (crossmatches.jwst_hsc.source.simulate.n), which the subsampling intervals of "
         "['mknn', 'cknna'] rescore (metrics.subsampling_splits); k must be below 50"),
        (lambda c: c["probes"].update(knn_k=160), "probes.knn_k: 160 neighbours do not fit the smallest training "
         "fold (160 objects of 5 folds, probes.folds) of crossmatch 'jwst_hsc' of at most 200 objects "
         "(crossmatches.jwst_hsc.source.simulate.n); must be below 160"),
    ],
)
def test_a_value_that_would_fail_a_job_fails_the_plan(breadth_config, edit, message):
    edit(breadth_config)
    with pytest.raises(ConfigError) as err:
        validate_config(breadth_config)
    assert str(err.value).startswith(message), str(err.value)


def test_neighbourhoods_fit_what_the_plan_knows_of_each_crossmatch(breadth_config, paper_config, tmp_path):
    """Subsampling intervals only on a neighbourhood metric ask quarters; a hub crossmatch's size is
    its limit (unknown without one); a crossmatch file's is its rows, and its properties its own."""
    from samesky.simulate import simulate_crossmatch

    breadth_config["metrics"].update(k=50, subsampling_splits=0)
    validate_config(breadth_config)
    breadth_config["metrics"].update(subsampling_splits=50, names=["cka_linear"])
    validate_config(breadth_config)
    paper_config["metrics"]["k"] = 40
    validate_config(copy.deepcopy(paper_config))
    paper_config["crossmatches"]["sdss_hsc"]["source"]["hf"]["limit"] = 40
    with pytest.raises(ConfigError, match=r"^metrics\.k: 40 neighbours do not fit crossmatch 'sdss_hsc' of at most 40 "
                       r"objects \(crossmatches\.sdss_hsc\.source\.hf\.limit\)"):
        validate_config(paper_config)
    path = tmp_path / "sky.h5"
    config = copy.deepcopy(breadth_config)
    config["crossmatches"] = {"sky": {"surveys": ["desi", "hsc"], "source": {"path": str(path)}}}
    config["preprocess"]["percentile_source"] = {}
    config["metrics"]["null_crossmatch"] = None
    config["probes"].update(properties=["redshift", "log_mas"], categorical=[])
    validate_config(copy.deepcopy(config))  # not yet made: nothing known
    simulate_crossmatch(path, "sky", ["desi", "hsc"], 12, 0)
    with pytest.raises(ConfigError, match=r"^probes\.properties\[1\]: crossmatch 'sky' has no property 'log_mas'"):
        validate_config(copy.deepcopy(config))
    config["probes"].update(properties=["redshift", "log_mass"], knn_k=3)
    with pytest.raises(ConfigError, match=r"^metrics\.k: 50 neighbours do not fit crossmatch 'sky' of at most 12 "
                       r"objects \(crossmatches\.sky\.source\.path\)"):
        validate_config(config)


def test_the_plan_knows_the_latent_properties_the_simulation_writes():
    from samesky.latent_keys import truth_keys
    from samesky.simulate import simulate_sky

    for surveys in (["jwst", "hsc"], ["legacysurvey", "hsc"], ["desi", "hsc"], ["sdss", "hsc"]):
        assert sorted(truth_keys(surveys)) == sorted(simulate_sky("keys", surveys, 2, 0)["truth"]), surveys


def test_a_profile_placeholder_is_refused_naming_its_key():
    from samesky.config import check_profile_resources

    check_profile_resources({"slurm_account": "astro", "mem_mb": 8000}, {"embed": {"slurm_partition": "gpu"}})
    with pytest.raises(ConfigError, match=r"^set-resources\.embed\.slurm_partition: 'CHANGE_ME_gpu_partition' is a "
                       r"placeholder; set it in your profile"):
        check_profile_resources({"slurm_account": "astro"}, {"embed": {"slurm_partition": "CHANGE_ME_gpu_partition"}})
    with pytest.raises(ConfigError, match=r"^default-resources\.slurm_partition: 'CHANGE_ME_cpu_partition'"):
        check_profile_resources({"slurm_partition": "CHANGE_ME_cpu_partition"}, {})


def test_defaults_are_filled(breadth_config):
    breadth_config.pop("metrics")
    config = validate_config(breadth_config)
    assert config["metrics"]["k"] == 10
    assert config["metrics"]["null_draws"] == 1000
    assert Plan(config).metric_params()["feature_space_draws"] == 100
    assert config["metrics"]["alpha"] == 0.05 and Plan(config).metric_params()["alpha"] == 0.05
    assert Plan(config).metric_params()["cka_null"] == "closed_form" and Plan(config).cka_invariants()
    config["metrics"]["cka_null"] = "permutation"
    assert not Plan(config).cka_invariants()
    assert config["preprocess"]["mode"] == "paper"


def test_config_slices_isolate_settings(paper_config):
    plan = Plan(validate_config(paper_config))
    hsc, jwst = plan.preprocess_params("hsc"), plan.preprocess_params("jwst")
    assert hsc["rgb"] == ["z", "r", "g"] and jwst["rgb"] == ["f444w", "f277w", "f090w"]
    assert hsc["source"] == "legacysurvey_hsc" and jwst["source"] == "jwst_hsc"
    assert plan.preprocess_params("desi") == {"target_grid": "desi"}
    assert plan.weights_source("vit-base") == "google/vit-base-patch16-224-in21k"


# The measures of the authors' current code (pu 6672072 src/pu/metrics/, issue 27 "pu HEAD parity"),
# by registry name; those of one shared space are left out of a run whose pairs differ in dimension.
PU_MEASURES = {"mknn", "cka_linear", "jaccard", "cka_rbf", "svcca", "pwcca", "procrustes", "rsa", "linear_r2_both",
               "frechet", "eigenspectrum", "mi_ksg"}
PU_SHARED_SPACE = {"mmd", "cosine_matched", "tucker", "riemannian", "gaussian_kl", "gaussian_js"}


def test_paper_config_runs_the_authors_measures_in_compare_and_the_atlas(paper_config):
    """config/config.yaml: the compare and compare_layers jobs' settings (the rules' params) hold
    the authors' measures and platonic-rep's, with the estimates N = 102,000 needs (the exact median
    and Spearman ranks stop near N = 8,200 and 5,800) and no measure that refuses unequal dimensions."""
    from samesky.metrics.registry import METRICS

    plan = Plan(validate_config(paper_config))
    compare, layers = plan.metric_params(), plan.layer_params()
    assert compare["metrics"] == layers["metrics"] and compare["params"] == layers["params"]
    names = set(compare["metrics"])
    assert PU_MEASURES | {"cycle_knn", "lcs_knn", "edit_distance_knn"} <= names and not names & PU_SHARED_SPACE
    assert all(METRICS[m].equal_dims for m in PU_SHARED_SPACE) and not any(METRICS[m].equal_dims for m in names)
    assert compare["params"]["cka_rbf"]["median_sample"] == compare["params"]["rsa"]["sample_pairs"] == 10**6
    assert compare["params"]["procrustes"]["unequal_dims"] == "zero_pad"
    assert {m for m in names if METRICS[m].uses_knn} == {"mknn", "cknna", "jaccard", "cycle_knn", "lcs_knn",
                                                           "edit_distance_knn"}
    assert plan.graph_width() == 80  # the kNN measures' intervals read the 8k-column cached graphs


def test_metric_params_carry_every_compare_setting(breadth_config):
    breadth_config["metrics"].update(feature_space_draws=7, null_draws=11, alpha=0.1)
    params = Plan(validate_config(breadth_config)).metric_params()
    assert params["feature_space_draws"] == 7 and params["null_draws"] == 11 and params["alpha"] == 0.1
    import inspect

    from samesky.metrics.compare import compare_files

    keywords = set(inspect.signature(compare_files).parameters)
    assert set(params) <= keywords  # the compare script passes them through as keywords


def test_metric_params_reach_only_the_compare_jobs_of_their_metric(breadth_config):
    """metrics.params: the registry's defaults, updated per metric; editing one metric's parameters
    changes the compare jobs' params and nothing else (graphs and embeddings are not rerun), and a
    metric that is not run takes no part."""
    from samesky.metrics.registry import METRICS

    plan = Plan(validate_config(breadth_config))
    assert "mutual_info" in plan.metric_params()["metrics"]
    default = METRICS["mutual_info"].defaults["components"]
    assert plan.metric_params()["params"] == {"mutual_info": {"components": default}}  # kNN metrics: k only
    before = {"embed": plan.embed_params(), "knn": plan.knn_params(), "width": plan.graph_width(),
              "invariants": plan.cka_invariants(), "metrics": plan.metric_params()}
    breadth_config["metrics"]["params"] = {"mutual_info": {"components": default + 7}}
    plan = Plan(validate_config(breadth_config))
    after = {"embed": plan.embed_params(), "knn": plan.knn_params(), "width": plan.graph_width(),
             "invariants": plan.cka_invariants(), "metrics": plan.metric_params()}
    assert after["metrics"]["params"] == {"mutual_info": {"components": default + 7}}
    assert {**after["metrics"], "params": before["metrics"]["params"]} == before["metrics"]
    assert {key: v for key, v in after.items() if key != "metrics"} == {key: v for key, v in before.items() if key != "metrics"}
    breadth_config["metrics"]["names"] = ["mknn", "cka_linear"]
    assert Plan(validate_config(breadth_config)).metric_params()["params"] == {}  # mutual_info is not run


def test_cached_graphs_are_wide_enough_for_subsampling_intervals(breadth_config):
    """Neighbourhood metrics with intervals need 8k cached columns (registry.graph_width); no
    neighbourhood metric or no interval draws: k."""
    breadth_config["metrics"].update(k=7, subsampling_splits=50, names=["cka_linear", "cknna"])
    assert Plan(validate_config(breadth_config)).graph_width() == 56
    breadth_config["metrics"].update(subsampling_splits=0)
    assert Plan(validate_config(breadth_config)).graph_width() == 7
    breadth_config["metrics"].update(subsampling_splits=50, names=["cka_linear"])
    assert Plan(validate_config(breadth_config)).graph_width() == 7


def test_demo_plan_scores_every_embedding_against_the_latent_truth(breadth_config):
    plan = Plan(validate_config(breadth_config))
    truth = [c for c in plan.comparisons if c.kind == "truth"]
    assert sorted((c.crossmatch, c.survey_a, c.model_a) for c in truth) == sorted(plan.embeddings)
    assert {(c.survey_b, c.model_b) for c in truth} == {("truth", "latent-truth")}
    for name, xm in breadth_config["crossmatches"].items():
        xm["source"] = {"path": f"{name}.h5"}  # real data: no truth
        xm.pop("drop_flat", None)  # a path is not ingested: nothing drops rows
    assert not [c for c in Plan(validate_config(breadth_config)).comparisons if c.kind == "truth"]


def test_knn_precision_reaches_only_the_graph_jobs(breadth_config):
    plan = Plan(validate_config(breadth_config))
    assert plan.knn_params() == {"k": 10, "precision": "fp32"}  # the schema default
    before = plan.metric_params()
    breadth_config["metrics"]["knn_precision"] = "bf16-screened"
    plan = Plan(validate_config(breadth_config))
    assert plan.knn_params()["precision"] == "bf16-screened"
    assert plan.metric_params() == before  # compare jobs are not rerun for it
    import inspect

    from samesky.metrics.knn import knn_file

    assert set(plan.knn_params()) <= set(inspect.signature(knn_file).parameters)
    breadth_config["metrics"]["knn_precision"] = "bf16"
    with pytest.raises(ConfigError, match="knn_precision"):
        validate_config(breadth_config)


def test_a_renamed_key_is_refused_naming_its_new_name(breadth_config):
    """metrics.bootstrap_draws counted subsampling splits: an old config is told the new key."""
    breadth_config["metrics"]["bootstrap_draws"] = breadth_config["metrics"].pop("subsampling_splits")
    with pytest.raises(ConfigError, match=r"^metrics\.bootstrap_draws: renamed metrics\.subsampling_splits"):
        validate_config(breadth_config)


def test_untrained_controls_run_through_the_same_jobs(paper_config):
    """models.untrained: a family (vit) or a model (dinov2-small) also runs with random weights at
    its real architecture, as the family vit@random: embedded, compared within its family and
    against the other surveys like any model, with a seeded weights directory of its own."""
    paper_config["models"]["untrained"] = ["vit", "dinov2-small"]
    paper_config["models"]["untrained_seed"] = 3
    plan = Plan(validate_config(paper_config))
    controls = [m for m in plan.image_models if "@random" in m]
    assert controls == ["dinov2@random-small", "vit@random-base", "vit@random-large", "vit@random-huge"]
    assert plan.image_models[: -len(controls)] == Plan(validate_config(
        {**paper_config, "models": {**paper_config["models"], "untrained": []}})).image_models
    assert plan.weights_source("vit@random-large") == "resources/models/random/seed3/vit@random-large"
    assert plan.weights_source("vit-large") == "google/vit-large-patch16-224-in21k"
    assert plan.untrained_full_size()
    pairs = {(c.kind, c.crossmatch, c.survey_a, c.model_a, c.survey_b, c.model_b) for c in plan.comparisons}
    assert ("intramodal", "legacysurvey_hsc", "hsc", "vit@random-base", "hsc", "vit@random-large") in pairs
    assert ("intramodal", "legacysurvey_hsc", "hsc", "vit@random-large", "hsc", "vit@random-huge") in pairs
    assert not any(c.model_a.startswith("vit@") != c.model_b.startswith("vit@") for c in plan.comparisons
                   if c.kind == "intramodal")  # never a trained size against a control
    assert ("crossmodal", "legacysurvey_hsc", "legacysurvey", "vit@random-base", "hsc", "vit@random-base") in pairs
    assert ("crossmodal", "desi_hsc", "desi", "specformer-base", "hsc", "dinov2@random-small") in pairs
    assert ("self", plan.null_crossmatch, "hsc", "vit@random-huge", "hsc", "vit@random-huge") in pairs
    assert ("legacysurvey_hsc", "hsc", "dinov2@random-small") in plan.embeddings
    trained = Plan(validate_config({**paper_config, "models": {**paper_config["models"], "untrained": []}}))
    assert len(plan.embeddings) > len(trained.embeddings)


def test_untrained_controls_must_name_configured_models(paper_config):
    paper_config["models"]["untrained"] = ["vit", "resnet"]
    with pytest.raises(ConfigError, match=r"models\.untrained\[1\]: 'resnet' is not a configured image family or model"):
        validate_config(paper_config)
    paper_config["models"]["untrained"] = ["vit-giant"]
    with pytest.raises(ConfigError, match=r"models\.untrained\[0\]: 'vit-giant'"):
        validate_config(paper_config)


def test_untrained_controls_are_tiny_in_the_demo(breadth_config):
    breadth_config["models"]["untrained"] = ["vit"]
    plan = Plan(validate_config(breadth_config))
    assert not plan.untrained_full_size()
    assert plan.weights_source("vit@random-base") == "resources/models/random/seed0/vit@random-base"
    assert plan.weights_source("vit-base") == "resources/models/tiny/vit-base"


def test_layer_comparisons_are_the_paper_pairs_and_the_truth(breadth_config, paper_config):
    """embed.layers not final: crossmodal, intramodal and truth pairs are compared block by block
    (not the self pairs), each job reading both sides' final and block files (the truth: final only)."""
    assert Plan(validate_config(paper_config)).layer_metric_files() == []
    paper_config["embed"]["layers"] = "all"
    plan = Plan(validate_config(paper_config))
    pairs = plan.layer_comparisons()
    assert [c for c in plan.comparisons if c.kind != "self"] == pairs and len(pairs) == 130
    assert plan.layer_metric_files()[0] == (f"results/platonic-universe/layers_metrics/{pairs[0].crossmatch}/{pairs[0].survey_a}/"
                                            f"{pairs[0].model_a}/{pairs[0].survey_b}/{pairs[0].model_b}.csv")
    breadth_config["embed"]["layers"] = [0, -1]
    plan = Plan(validate_config(breadth_config))
    truth = [c for c in plan.layer_comparisons() if c.kind == "truth"]
    assert sorted((c.crossmatch, c.survey_a, c.model_a) for c in truth) == sorted(plan.embeddings)
    c = truth[0]
    stem = f"{c.crossmatch}/{c.survey_a}/{c.model_a}.h5"
    assert plan.layer_inputs(c.crossmatch, c.survey_a, c.model_a, c.survey_b, c.model_b) == {
        "emb_a": f"results/demo/embeddings/{stem}", "knn_a": f"results/demo/knn/{stem}",
        "layers_a": f"results/demo/layers/{stem}", "knn_layers_a": f"results/demo/knn_layers/{stem}",
        "emb_b": f"results/demo/embeddings/{c.crossmatch}/truth/latent-truth.h5",
        "knn_b": f"results/demo/knn/{c.crossmatch}/truth/latent-truth.h5"}
    import inspect

    from samesky.metrics.layers import compare_layer_files, knn_layers_file

    assert set(plan.layer_params()) <= set(inspect.signature(compare_layer_files).parameters)
    assert {"k", "precision", "invariants"} <= set(inspect.signature(knn_layers_file).parameters)


def test_a_crossmatch_runs_the_image_models_it_names(paper_config):
    """crossmatches.<name>.image_models keeps that crossmatch's embeddings (and so its pairs) to the
    named families or model keys, untrained controls by their own family; the others keep all."""
    paper_config["models"]["untrained"] = ["vit"]
    full = Plan(validate_config(copy.deepcopy(paper_config)))
    paper_config["crossmatches"]["jwst_hsc"]["image_models"] = ["vit@random", "dinov2-small"]
    plan = Plan(validate_config(paper_config))
    assert [m for xm, s, m in plan.embeddings if (xm, s) == ("jwst_hsc", "jwst")] == \
        ["dinov2-small", "vit@random-base", "vit@random-large", "vit@random-huge"]
    assert [e for e in plan.embeddings if e[0] != "jwst_hsc"] == [e for e in full.embeddings if e[0] != "jwst_hsc"]
    assert {(c.kind, c.model_a, c.model_b) for c in plan.comparisons if c.crossmatch == "jwst_hsc"} == {
        ("intramodal", "vit@random-base", "vit@random-large"), ("intramodal", "vit@random-large", "vit@random-huge"),
        *(("crossmodal", m, m) for m in ("dinov2-small", "vit@random-base", "vit@random-large", "vit@random-huge"))}


def test_layer_pairs_choose_the_atlas_pairs_per_kind(breadth_config):
    """embed.layer_pairs: per kind, every crossmatch's pairs ('all', the default) or the named ones."""
    breadth_config["embed"]["layers"] = "all"
    every = Plan(validate_config(copy.deepcopy(breadth_config))).layer_comparisons()
    breadth_config["embed"]["layer_pairs"] = {"truth": ["desi_hsc"], "intramodal": []}
    chosen = Plan(validate_config(breadth_config)).layer_comparisons()
    assert chosen == [c for c in every if c.kind == "crossmodal" or (c.kind, c.crossmatch) == ("truth", "desi_hsc")]
    assert {c.kind for c in chosen} == {"crossmodal", "truth"} and len(chosen) < len(every)


def test_layer_jobs_rerun_only_for_their_settings(breadth_config):
    """The rules' params: k reaches the block graphs and the layer comparisons; null draws only the
    comparisons; the interval settings neither (rerun scope, as snakemake compares params)."""
    breadth_config["embed"]["layers"] = "all"

    def slices(edit):
        config = __import__("copy").deepcopy(breadth_config)
        edit(config["metrics"])
        plan = Plan(validate_config(config))
        return ({**plan.knn_params(), "inv": plan.layer_invariants()}, plan.layer_params(), plan.layer_metric_files())

    graphs, compare, files = slices(lambda m: None)
    k = slices(lambda m: m.update(k=5))
    assert k[0] != graphs and k[1] != compare and k[2] == files
    draws = slices(lambda m: m.update(null_draws=7))
    assert draws[0] == graphs and draws[1] != compare and draws[2] == files
    assert slices(lambda m: m.update(ci=0.8, subsampling_splits=500))[:2] == (graphs, compare)
    assert slices(lambda m: m.update(names=["mknn"]))[0]["inv"] is False


def test_adding_a_model_adds_only_its_layer_jobs(paper_config):
    paper_config["embed"]["layers"] = "all"
    before = Plan(validate_config(paper_config)).layer_metric_files()
    paper_config["models"]["image"]["vit"].remove("huge")
    without = Plan(validate_config(paper_config)).layer_metric_files()
    added = sorted(set(before) - set(without))
    assert set(without) <= set(before) and added and all("vit-huge" in f for f in added)
    assert len(added) == 6 + 4  # intramodal large vs huge on 6 image (crossmatch, survey); 4 crossmodal


def test_a_survey_added_to_the_registry_is_planned_with_no_other_change(breadth_config, monkeypatch):
    """docs/EXTENDING.md: a survey is its surveys.Survey entry; the schema, the planner and the
    report read everything else from it (here a Legacy-like 'euclid' crossmatched with HSC)."""
    import dataclasses

    from samesky import surveys
    from samesky.report.records import survey_label, survey_rank

    euclid = dataclasses.replace(surveys.SURVEYS["legacysurvey"], name="euclid", label="Euclid", order=2,
                                 rgb=("i", "r", "g"))
    monkeypatch.setitem(surveys.SURVEYS, "euclid", euclid)
    breadth_config["crossmatches"] = {"euclid_hsc": {"surveys": ["euclid", "hsc"], "source": {"path": "euclid.h5"}}}
    breadth_config["metrics"]["null_crossmatch"] = None
    breadth_config["preprocess"].pop("percentile_source", None)
    breadth_config["probes"] = {}
    plan = Plan(validate_config(breadth_config))
    image_models = plan.models_for("euclid_hsc", "hsc")
    assert [e for e in plan.embeddings if e[1] == "euclid"] == [("euclid_hsc", "euclid", m) for m in plan.models_for("euclid_hsc", "euclid")]
    assert set(plan.models_for("euclid_hsc", "euclid")) == set(image_models) - {"aion-base", "astroclip-image"}  # codecs per survey
    assert plan.preprocess_params("euclid")["rgb"] == ["i", "r", "g"] and plan.preprocess_params("hsc")["rgb"] == ["z", "r", "g"]
    assert survey_label("euclid") == "Euclid" and survey_rank("jwst") < survey_rank("euclid") < survey_rank("hsc")


SCHEMA_DEFAULTS = [("metrics", "k", 7), ("metrics", "names", ["cka_linear"]), ("metrics", "null_draws", 11),
                   ("metrics", "subsampling_splits", 12), ("metrics", "feature_space_draws", 13), ("metrics", "ci", 0.9),
                   ("metrics", "alpha", 0.1), ("metrics", "cka_null", "permutation"), ("metrics", "seed", 5),
                   ("metrics", "knn_precision", "bf16-screened"), ("embed", "device", "cpu"),
                   ("embed", "precision", "bf16"), ("embed", "batch_size", 3), ("embed", "shard_size", 4),
                   ("embed", "layers", "all"), ("preprocess", "percentiles", [2, 98]),
                   ("preprocess", "max_images", 17), ("preprocess", "seed", 6),
                   ("preprocess", "percentile_sample", "first"), ("models", "untrained_seed", 9)]


def _settings(plan: Plan) -> dict:
    """What ``plan`` hands to the rules."""
    return {"metrics": plan.metric_params(), "knn": plan.knn_params(), "embed": plan.embed_params(),
            "throughput": plan.embed_throughput(), "layers": plan.layers(), "hsc": plan.preprocess_params("hsc"),
            "weights": plan.weights_source("vit@random-base")}


def _plan_sees(plan: Plan, value) -> None:
    """Assert that ``plan`` hands each setting ``value(block, key)`` to its rules."""
    m = {key: value(block, key) for block, key, _ in SCHEMA_DEFAULTS if block == "metrics"}
    params = plan.metric_params()
    assert params.pop("params") == plan._tunable_params(m["names"])  # registry defaults under metrics.params
    assert params == {"metrics": m["names"], **{key: m[key] for key in (
        "k", "null_draws", "subsampling_splits", "feature_space_draws", "ci", "alpha", "cka_null", "seed")}}
    assert plan.knn_params() == {"k": m["k"], "precision": m["knn_precision"]}
    assert plan.embed_params() == {"device": value("embed", "device"), "precision": value("embed", "precision")}
    assert plan.embed_throughput() == {"batch_size": value("embed", "batch_size"),
                                       "shard_size": value("embed", "shard_size")}
    assert plan.layers() == value("embed", "layers")
    hsc = plan.preprocess_params("hsc")
    assert (hsc["percentiles"], hsc["max_images"], hsc["seed"], hsc["sample"]) == tuple(
        value("preprocess", key) for key in ("percentiles", "max_images", "seed", "percentile_sample"))
    assert plan.weights_source("vit@random-base") == (
        f"resources/models/random/seed{value('models', 'untrained_seed')}/vit@random-base")


def test_plan_takes_every_default_from_the_schema(breadth_config, tmp_path, monkeypatch):
    """The schema is the one place for defaults: a config that leaves the keys out gets the
    schema's values through the Plan, and a default edited in the schema reaches the Plan."""
    import samesky.config as config_module

    minimal = {"crossmatches": {"jwst_hsc": breadth_config["crossmatches"]["jwst_hsc"]},
               "models": {"image": {"vit": ["base"]}, "weights": "tiny", "untrained": ["vit"]}}
    schema = yaml.safe_load(config_module.SCHEMA.read_text())
    _plan_sees(Plan(validate_config(copy.deepcopy(minimal))),
               lambda block, key: schema["properties"][block]["properties"][key]["default"])

    for block, key, value in SCHEMA_DEFAULTS:
        assert schema["properties"][block]["properties"][key]["default"] != value  # a real edit
        schema["properties"][block]["properties"][key]["default"] = value
    schema["properties"]["reference_survey"]["default"] = "jwst"
    edited = tmp_path / "schema.yaml"
    edited.write_text(yaml.safe_dump(schema))
    monkeypatch.setattr(config_module, "SCHEMA", edited)
    plan = Plan(validate_config(copy.deepcopy(minimal)))
    _plan_sees(plan, lambda block, key: next(v for b, k, v in SCHEMA_DEFAULTS if (b, k) == (block, key)))
    assert plan.reference == "jwst"
    assert plan.preprocess_params("jwst")["rgb"] == ["f444w", "f277w", "f090w"]  # unlisted: the survey's own

    for block, key, value in SCHEMA_DEFAULTS:  # no fallback behind the schema: without its default, a key is missing
        del schema["properties"][block]["properties"][key]["default"]
        edited = tmp_path / f"schema_without_{key}.yaml"  # a new file: Snakemake caches schemas by path
        edited.write_text(yaml.safe_dump(schema))
        monkeypatch.setattr(config_module, "SCHEMA", edited)
        with pytest.raises(KeyError, match=key):
            _settings(Plan(validate_config(copy.deepcopy(minimal))))
        schema["properties"][block]["properties"][key]["default"] = value


@pytest.fixture(scope="module")
def demo_rules(tmp_path_factory):
    """The workflow's rules as Snakemake parses them with tests/breadth.yaml: {name: output patterns,
    constraints cut}."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    root = Path(__file__).resolve().parents[1]
    with SnakemakeApi(OutputSettings(quiet=True)) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
            config_settings=ConfigSettings(configfiles=[root / "tests" / "breadth.yaml"]),
            snakefile=root / "Snakefile", workdir=tmp_path_factory.mktemp("parse"))._workflow
        return {rule.name: [re.sub(r"\{(\w+),[^{}]*\}", r"{\1}", str(out)) for out in rule.output]
                for rule in workflow.rules}, {rule.name: rule for rule in workflow.rules}


def test_every_rule_output_is_a_pattern_of_samesky_paths(demo_rules):
    """Output paths are spelled once, in samesky.paths: every rule output is one of its patterns
    (or, for the truth embedding, one filled in)."""
    from snakemake.io import regex_from_filepattern

    from samesky import paths

    run = paths.RunPaths("demo")  # tests/breadth.yaml's run_name
    shared = {name: value for name, value in vars(paths).items() if isinstance(value, str) and value.startswith("resources/")}
    patterns = shared | {name: getattr(run, name) for name in paths.RunPaths.patterns()}
    outputs, _ = demo_rules
    for rule, outs in outputs.items():
        for out in outs:
            matched = [name for name, pattern in patterns.items()
                       if out == pattern or re.match(regex_from_filepattern(pattern), out)]
            assert matched, (rule, out)
    made = {out for outs in outputs.values() for out in outs}
    assert set(patterns.values()) <= made | {run.EMBEDDING.replace("{survey}/{model}", "truth/latent-truth")}


def test_every_plan_target_is_made_by_a_rule(demo_rules, breadth_config):
    """Every path the Plan requests or hands to a rule's input is an output of a rule."""
    _, rules = demo_rules
    breadth_config["models"]["untrained"] = ["vit"]
    breadth_config["probes"]["physics"] = {"tests": ["knn_purity", "neighbourhood_wasserstein"],
                                           "params": {"knn_purity": {"k": 10}}}
    plan = Plan(validate_config(breadth_config))
    assert plan.physics_paths and plan.physics_pair_paths
    targets = plan.metric_files() + plan.probe_paths + plan.physics_paths + plan.physics_pair_paths
    for xm in plan.crossmatches:
        targets += [plan.crossmatch_path(xm), plan.truth_path(xm), plan.snapshot_dir(xm)]
    targets += [plan.weights_source(model) for model in plan.image_models + [plan.spectrum_model]]
    assert any("@random" in t for t in targets) and any("/tiny/" in t for t in targets)
    for target in targets:
        assert [name for name, rule in rules.items() if rule.is_producer(target)], target


def test_wildcard_patterns_admit_every_documented_name():
    """docs/EXTENDING.md's name formats are the Snakefile's patterns: every registered model key and
    survey, a dotted size (1.5b) and an underscored survey (cosmos_web) match; a dash too many or a
    slash does not."""
    from samesky.models.registry import MODELS
    from samesky.surveys import SURVEYS

    text = (Path(__file__).resolve().parents[1] / "workflow" / "rules" / "common.smk").read_text()
    model, survey = (re.search(rf'^{name} = "(.*)"$', text, re.M).group(1) for name in ("MODEL_KEY", "SURVEY_NAME"))
    for key in [*MODELS, "qwen2-1.5b", "vit@random-base", "my_family-v2.1"]:
        assert re.fullmatch(model, key), key
    for key in ["vit", "vit-base-2", "vit/base", "Vit-base"]:
        assert not re.fullmatch(model, key), key
    for name in [*SURVEYS, "cosmos_web"]:
        assert re.fullmatch(survey, name), name
    assert not re.fullmatch(survey, "cosmos-web") and not re.fullmatch(survey, "a/b")


def test_a_job_names_its_comparison_as_the_plan_does(breadth_config):
    """The compare scripts build their comparison from the job's wildcards with ``Comparison.of``:
    the same record fields, in the order compare_files checks them, as the Plan's own."""
    from types import SimpleNamespace

    from samesky.plan import COMPARISON_FIELDS, Comparison

    assert COMPARISON_FIELDS == ("kind", "crossmatch", "survey_a", "model_a", "survey_b", "model_b")  # records' first
    for c in Plan(validate_config(breadth_config)).comparisons:
        wildcards = SimpleNamespace(**{k: v for k, v in c.as_dict().items() if k != "kind"})
        assert Comparison.of(wildcards, c.kind) == c
        assert tuple(c.as_dict()) == COMPARISON_FIELDS


def test_cosmos_web_plans_against_its_own_reference_and_knows_its_catalogue(breadth_config):
    """A COSMOS-Web crossmatch (simulated, in the hub's layout): compared against its own reference
    (cosmos_hsc); its probe properties are checked against the latent truth and the LePhare
    columns before any job; as a hub table, a column beyond those is left to ingestion."""
    from samesky.latent_keys import truth_keys

    xms = breadth_config["crossmatches"]
    xms["cosmos_web"] = {"surveys": ["cosmos_jwst", "cosmos_hsc"], "source": {"simulate": {"n": 200, "seed": 2}}}
    breadth_config["probes"]["properties"] = {"cosmos_web": ["lp_mass", "mag_model_hsc-g", "log_ssfr"]}
    breadth_config["probes"]["categorical"] = []
    with pytest.raises(ConfigError, match=r"^crossmatches\.cosmos_web\.surveys: \['cosmos_jwst', 'cosmos_hsc'\] "
                                          r"does not include the reference survey 'hsc' \(reference_survey\)"):
        validate_config(copy.deepcopy(breadth_config))
    xms["cosmos_web"]["reference"] = "cosmos_hsc"
    plan = Plan(validate_config(copy.deepcopy(breadth_config)))
    assert plan.hf_source("cosmos_web") == {"dataset": "resources/simulated/cosmos_web",
                                            "layout": "Ashodkh/cosmosweb-hsc-jwst-high-snr-pil2",
                                            "id_column": None, "limit": None, "drop_flat": {}}
    cross = [c for c in plan.comparisons if c.crossmatch == "cosmos_web" and c.kind == "crossmodal"]
    assert cross and {(c.survey_a, c.survey_b) for c in cross} == {("cosmos_jwst", "cosmos_hsc")}
    assert {job for job in plan.probes if job[0] == "cosmos_web"} == {
        ("cosmos_web", s, m) for s in ("cosmos_jwst", "cosmos_hsc") for m in plan.models_for("cosmos_web", s)}
    assert "phot_hsc_g" in truth_keys(["cosmos_jwst", "cosmos_hsc"])
    breadth_config["probes"]["properties"] = {"cosmos_web": ["lp_mass", "Z"]}
    with pytest.raises(ConfigError, match=r"^probes\.properties\.cosmos_web\[1\]: crossmatch 'cosmos_web' has no "
                                          r"property 'Z'; its properties: \[.*'lephare_photozs'.*'redshift'"):
        validate_config(copy.deepcopy(breadth_config))
    xms["cosmos_web"]["source"] = {"hf": {"dataset": "Ashodkh/cosmosweb-hsc-jwst-high-snr-pil2"}}
    validate_config(breadth_config)  # the hub table may hold more columns than the adapter names
