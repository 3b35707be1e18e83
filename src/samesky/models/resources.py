"""Cluster policy of the embedding jobs: the memory, minutes, GPU memory and CPU cores a job asks
for, and whether a model fits the configured GPU. The catalogue (``registry``) says what a model
is; this module says what running it costs, so that a scheduler's numbers have one home.
"""
from __future__ import annotations

import math

from .registry import get_model, weights_dtype

M = 1_000_000
WEIGHT_BYTES = {"fp32": 4, "bf16": 2}


def attempt_growth(attempt: int) -> float:
    """How much more memory and time a retry asks for than the first attempt: +50% each."""
    return 1.0 + 0.5 * (max(int(attempt), 1) - 1)


def resources_for(key: str, attempt: int = 1, layers: bool = False) -> dict[str, int]:
    """Cluster resources of one embedding job; host memory, GPU memory and minutes grow with size.

    Weights take params x 4 bytes (fp32) or x 2 (bf16). Host: 8 GB + 4 copies of fp32 weights (loading,
    the state dict, .float()), 2 of bf16 ones (loaded as they are stored, then moved). GPU: 2 GB (CUDA context,
    activations at the default batch) + 1.5 x fp32 weights (autocast keeps bf16 copies of them) or 1.25 x
    bf16 weights. Host memory and minutes also grow with the attempt; GPU memory does not (a retry runs on
    the same kind of GPU).

    With layer-wise embeddings (``layers``) the job also holds one shard's blocks (float32 + float16:
    2048 rows x 48 blocks x 2048 dims is 1.2 GB) and, while writing the layers file, one block of
    every row (200k x 2048 read as float16, converted to float32 and back: 3.3 GB): +5 GB. Its
    runtime doubles: AstroPT runs all its blocks instead of stopping at the middle one, and every
    family writes its blocks twice (shards, then the layers file).
    """
    spec = get_model(key)
    grow = attempt_growth(attempt)
    dtype = weights_dtype(key)
    weights_mb = spec.params * WEIGHT_BYTES[dtype] / M
    return {
        "mem_mb": int((8000 + (4 if dtype == "fp32" else 2) * weights_mb + (5000 if layers else 0)) * grow),
        "runtime": int((30 + 0.1 * spec.params / M) * (2 if layers else 1) * grow),
        "gpu": 1,
        "gpu_mem_mb": int(2000 + (1.5 if dtype == "fp32" else 1.25) * weights_mb),
    }


def check_fits_gpu(key: str, gpu_memory_gb: float) -> None:
    """Refuse a model whose embedding job cannot fit a GPU of ``gpu_memory_gb`` (before any work)."""
    need = resources_for(key)["gpu_mem_mb"]
    if need > gpu_memory_gb * 1024:
        spec = get_model(key)
        raise ValueError(
            f"model {key!r} ({spec.params / 1e9:.2f}B parameters, {weights_dtype(key)} weights) needs about "
            f"{need / 1024:.0f} GB of GPU memory, more than the {gpu_memory_gb:g} GB of embed.gpu_memory_gb; "
            f"run it on a larger GPU (and set embed.gpu_memory_gb) or leave it out")


# Objects/s of one embed job: (forward pass on one GPU, input pipeline per CPU core).
# GPU: timm's published eager-AMP inference throughput on an RTX PRO 6000 Blackwell Max-Q
# (huggingface/pytorch-image-models results/benchmark-infer-amp-nchw-pt291-cu130-pro6000maxq.csv,
# batch 2048) for the same architecture at 224 px; DINOv2 at 224/14 (261 tokens) from ViT-*/16
# (197 tokens) x 197/261, ViT-g/14 x 257/261 and IJEPA-giant (ViT-g/16) x 257/197. Models timm
# does not publish ("est."): 73.7 TMAC/s (ViT-B/16's 4190/s x 17.58 GMAC) / their MACs per
# object, at most ViT-S/16's 11168/s. Input: objects per CPU-second of one input worker,
# ``benchmarks/bench_embed.py --pipeline`` (PIL processors, 160-px cutouts, batch 32), one
# figure per family (the processor is the same for every size); IJEPA's is assumed equal to
# ViT's (same processor class, bicubic), not measured. Re-measure both on the target machines.
EMBED_RATES: dict[str, tuple[float, float]] = {
    "vit-base": (4190, 483), "vit-large": (1365, 483), "vit-huge": (527, 483),
    "dinov2-small": (8430, 400), "dinov2-base": (3160, 400), "dinov2-large": (1030, 400),
    "dinov2-giant": (340, 400),
    "convnextv2-nano": (4551, 377), "convnextv2-tiny": (3148, 377), "convnextv2-base": (1420, 377),
    "convnextv2-large": (869, 377),
    "ijepa-huge": (527, 483), "ijepa-giant": (450, 483),
    # est. 0.9 / 5.4 / 45 GMAC (100 tokens, blocks up to n_layer // 2)
    "astropt-small": (11168, 569), "astropt-base": (11168, 569), "astropt-large": (1645, 569),
    "specformer-base": (1890, 2133),  # est. 39 GMAC (778 tokens)
    "astroclip-image": (1640, 582), "astroclip-spectrum": (1840, 1600),  # est. 45 / 40 GMAC
    "aion-base": (870, 1164), "aion-large": (295, 1164), "aion-xlarge": (78, 1164),  # est. 85 / 250 / 950 GMAC
    # Beyond the paper, GPU rates all "est.": GMAC = params x tokens + 2 L T^2 d (attention), at 73.7 TMAC/s.
    # Input rates measured with ``bench_embed.py --pipeline --n 256`` (2 shared cores): DINOv3 172/s (its
    # torch processor: float resize), CLIP 394/s; assumed: ViT's 483/s for ViT-MAE and SigLIP 2 (PIL resize
    # to size), DINOv3's 172/s for V-JEPA 2 (the same torch resize), 200/s for the VLM processors (anyres
    # tiles or resize, plus the tokeniser).
    # DINOv3: 201 tokens (CLS + 4 registers + 196): 4.7 / 6.1 / 18 / 63 / 172 / 1363 GMAC
    "dinov3-vits16": (11168, 172), "dinov3-vits16plus": (11168, 172), "dinov3-vitb16": (4103, 172),
    "dinov3-vitl16": (1171, 172), "dinov3-vith16plus": (428, 172), "dinov3-vit7b16": (54, 172),
    "vitmae-base": (4183, 483), "vitmae-large": (1195, 483), "vitmae-huge": (440, 483),  # 18 / 62 / 168 GMAC
    "clip-base": (4165, 394), "clip-large": (906, 394),  # 18 / 81 GMAC (197 / 257 tokens)
    # SigLIP 2: 196 / 256 / 729 / 256 tokens: 19 / 84 / 345 / 306 GMAC
    "siglip2-base": (3897, 483), "siglip2-large": (876, 483), "siglip2-so400m": (213, 483),
    "siglip2-giant": (241, 483),
    "vjepa2-large": (89, 172), "vjepa2-huge": (45, 172), "vjepa2-giant": (29, 172),  # 2048 tokens: 829 / 1637 / 2545 GMAC
    # LLaVA-OV: 2 SigLIP tiles of 729 tokens + ~1486 LM tokens (160-px input): 1446 / 11589 GMAC
    "llavaov-500m": (51, 200), "llavaov-7b": (6.4, 200),
    # PaliGemma 2: 256 SigLIP tokens + 259 LM tokens: 800 / 2530 / 7197 GMAC
    "paligemma2-3b": (92, 200), "paligemma2-10b": (29, 200), "paligemma2-28b": (10, 200),
}
MAX_EMBED_CPUS = 16  # a GPU node's cores per GPU (e.g. 8 GPUs, 128 cores)


def embed_cpus(key: str) -> int:
    """CPU cores of one GPU embed job: one runs the forward loop, the others (input workers)
    prepare as many objects/s as the GPU embeds, up to MAX_EMBED_CPUS.

    A small fast model needs more workers than a large slow one.
    """
    get_model(key)
    forward, per_core = EMBED_RATES[key]
    return min(MAX_EMBED_CPUS, 1 + math.ceil(forward / per_core))
