"""Rule preprocess: model-ready inputs (RGB uint8 images, or spectra on the DESI grid)."""
from samesky.preprocess import preprocess_images, preprocess_spectra
from samesky.runtime import setup_job
from samesky.surveys import IMAGE, get_survey

setup_job(snakemake)
survey, pre = snakemake.wildcards.survey, snakemake.params.pre
if get_survey(survey).modality == IMAGE:
    preprocess_images(snakemake.input.crossmatch, survey, snakemake.output[0], bands=pre["rgb"],
                      percentiles_json=snakemake.input.percentiles, mode=pre["mode"], crop=pre["crop"])
else:
    preprocess_spectra(snakemake.input.crossmatch, survey, snakemake.output[0])
