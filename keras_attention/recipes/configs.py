"""Model sizes and learning rates of the recipes, per task and data set.

Each is sized for its data on two CPU cores (minutes, not hours), except
`fra-eng`, which is D2L's configuration; the README says how long each
takes and how to get D2L's sizes where ours are smaller.
"""

__all__ = [
    "TRANSLATION_CONFIGS",
    "TRANSLATION_LEARNING_RATES",
    "CONFIGS",
    "LEARNING_RATES",
    "VISION_CONFIGS",
    "D2L_VISION_CONFIG",
    "LM_CONFIG",
    "LM_PROMPTS",
]

# Translation: (model kind, data) -> builder arguments. D2L's sizes for
# fra-eng; small ones that train in minutes on 2 CPUs for dates; "custom" for
# a user's own pairs file.
TRANSLATION_CONFIGS = {
    ("transformer", "dates"): dict(
        num_hiddens=64, ffn_num_hiddens=128, num_heads=4, num_blks=2, dropout=0.1
    ),
    ("transformer", "fra-eng"): dict(
        num_hiddens=256, ffn_num_hiddens=64, num_heads=4, num_blks=2, dropout=0.2
    ),
    # Sized for an hour on 2 CPUs (benchmarks/translation.py).
    ("transformer", "fra-eng-full"): dict(
        num_hiddens=128, ffn_num_hiddens=512, num_heads=4, num_blks=2, dropout=0.1
    ),
    ("transformer", "custom"): dict(
        num_hiddens=128, ffn_num_hiddens=256, num_heads=4, num_blks=2, dropout=0.1
    ),
    ("bahdanau", "dates"): dict(embed_size=32, num_hiddens=64, num_layers=1, dropout=0.1),
    ("bahdanau", "fra-eng"): dict(embed_size=256, num_hiddens=256, num_layers=2, dropout=0.2),
    ("bahdanau", "fra-eng-full"): dict(embed_size=256, num_hiddens=256, num_layers=2, dropout=0.2),
    ("bahdanau", "custom"): dict(embed_size=128, num_hiddens=128, num_layers=2, dropout=0.1),
}
TRANSLATION_LEARNING_RATES = {"transformer": 0.001, "bahdanau": 0.005}
# The names of keras-attention 0.1.0 (`keras_attention.cli.CONFIGS`).
CONFIGS = TRANSLATION_CONFIGS
LEARNING_RATES = TRANSLATION_LEARNING_RATES

# Vision transformers per data set, in D2L's names (`dropout` is used for both
# the embedding and the block dropout). Fashion-MNIST gets the CPU-sized model
# of benchmarks/vision.py (538k parameters, 0.889 test accuracy in 14 min on
# 2 cores); D2L's own (images resized to 96, 6.5M parameters, hours on a CPU)
# is `D2L_VISION_CONFIG` (`--img-size 96 --patch-size 16 --num-hiddens 512
# --mlp-num-hiddens 2048 --num-heads 8 --num-blks 2`). A folder of images gets
# the same small model at 32 pixels.
VISION_CONFIGS = {
    "shapes": dict(
        img_size=28,
        patch_size=7,
        num_hiddens=64,
        mlp_num_hiddens=128,
        num_heads=4,
        num_blks=2,
        dropout=0.1,
    ),
    "fashion-mnist": dict(
        img_size=28,
        patch_size=7,
        num_hiddens=128,
        mlp_num_hiddens=256,
        num_heads=4,
        num_blks=4,
        dropout=0.1,
    ),
    "folder": dict(
        img_size=32,
        patch_size=8,
        num_hiddens=128,
        mlp_num_hiddens=256,
        num_heads=4,
        num_blks=4,
        dropout=0.1,
    ),
}
D2L_VISION_CONFIG = dict(
    img_size=96,
    patch_size=16,
    num_hiddens=512,
    mlp_num_hiddens=2048,
    num_heads=8,
    num_blks=2,
    dropout=0.1,
)

# The character GPT of `train lm` (about 0.4M parameters with a character vocabulary).
LM_CONFIG = dict(num_hiddens=128, ffn_num_hiddens=256, num_heads=4, num_blks=2, dropout=0.1)
LM_PROMPTS = {"timemachine": "time traveller", "corpus": "the old cat"}
