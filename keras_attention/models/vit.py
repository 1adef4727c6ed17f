"""The vision Transformer as a functional Keras model.

D2L section "Transformers for Vision": images are rescaled and resized
inside the model, cut into patches and embedded, a learned "<cls>" token is
put in front, learned position embeddings are added, `num_blks` pre-norm
`ViTBlock`s follow, and the class token's final representation, layer
normalized, is projected to class logits.

Letters used in shape comments: B batch, h, w raw image height and width,
C channels, P patches, D num_hiddens, H heads, K classes.
"""

import keras

from keras_attention import _checks
from keras_attention.layers import (
    ClassToken,
    LearnedPositionalEmbedding,
    PatchEmbedding,
    TakeClassToken,
    ViTBlock,
)

__all__ = ["vision_transformer"]


def vision_transformer(
    img_size,
    patch_size,
    num_hiddens,
    mlp_num_hiddens,
    num_heads,
    num_blks,
    emb_dropout,
    blk_dropout,
    num_classes,
    num_channels=1,
    input_size=None,
    use_bias=False,
    return_attention_scores=False,
    name="vision_transformer",
):
    """Builds D2L's vision Transformer (ViT) classifier.

    The model takes raw images with pixel values in `0..255`, as uint8 or
    float arrays (the `images` input is float32; Keras casts uint8 arrays
    to it exactly). Inside the graph they are rescaled to `[0, 1]`
    (`rescaling`), resized to `img_size` with bilinear interpolation
    (`resizing`; the identity for images already of that size), embedded
    (`patch_embedding`), prefixed with the class token (`cls_token`), given
    learned position embeddings (`pos_embedding`, `num_patches + 1`
    positions) and dropout (`emb_dropout`), passed through the blocks
    (`vit_block_{i}`), and the class token is taken (`take_cls_token`),
    normalized (`final_norm`, epsilon 1e-5) and classified (`head`, float32
    logits even under mixed precision).

    Args:
        img_size: int or `(height, width)`. Size the images are resized to;
            must be divisible by `patch_size`.
        patch_size: int or `(height, width)`. Patch size.
        num_hiddens: int. Model width `D`.
        mlp_num_hiddens: int. Hidden width of each block's MLP.
        num_heads: int. Attention heads per block; must divide `num_hiddens`.
        num_blks: int. Number of `ViTBlock`s.
        emb_dropout: float. Dropout after the position embeddings.
        blk_dropout: float. Dropout inside the blocks.
        num_classes: int. Number of classes `K`.
        num_channels: int. Channels `C` of the images. Defaults to `1`
            (Fashion-MNIST).
        input_size: int, `(height, width)` or None. Fixed size of the raw
            images; `None` (the default) accepts any size.
        use_bias: bool. Biases in the attention projections. Defaults to
            `False` (D2L).
        return_attention_scores: bool. Also output every block's attention
            weights. Defaults to `False`.
        name: str. Model name.

    Returns:
        A `keras.Model` with input `images` `(B, h, w, C)` and output
        `logits` `(B, K)` (float32). With `return_attention_scores=True` the
        output is a dict: `logits` and `attention_{i}` `(B, H, 1 + P, 1 + P)`
        for block `i`, position 0 being the class token.

    Example:
    >>> model = vision_transformer(
    ...     img_size=16, patch_size=4, num_hiddens=16, mlp_num_hiddens=32,
    ...     num_heads=2, num_blks=1, emb_dropout=0.1, blk_dropout=0.1,
    ...     num_classes=10)
    >>> model.output_shape
    (None, 10)
    """
    img_size = _checks.check_pair("img_size", img_size)
    patch_size = _checks.check_pair("patch_size", patch_size)
    num_hiddens, mlp_num_hiddens, num_heads, num_blks, blk_dropout = _checks.check_blocks(
        num_hiddens,
        mlp_num_hiddens,
        num_heads,
        num_blks,
        blk_dropout,
        ffn_name="mlp_num_hiddens",
        dropout_name="blk_dropout",
    )
    num_classes = _checks.check_positive_int("num_classes", num_classes)
    num_channels = _checks.check_positive_int("num_channels", num_channels)
    emb_dropout = _checks.check_dropout(emb_dropout, "emb_dropout")
    use_bias = _checks.check_bool("use_bias", use_bias)
    return_attention_scores = _checks.check_bool("return_attention_scores", return_attention_scores)
    input_size = (
        (None, None) if input_size is None else _checks.check_pair("input_size", input_size)
    )
    name = _checks.check_string("name", name)

    # Layers.
    embedding = _embedding_layers(img_size, patch_size, num_hiddens, num_channels, emb_dropout)
    blocks = _vit_blocks(num_blks, num_hiddens, mlp_num_hiddens, num_heads, blk_dropout, use_bias)
    final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")
    take_cls = TakeClassToken(name="take_cls_token")
    head = keras.layers.Dense(num_classes, dtype="float32", name="head")

    # Functional graph.
    images = keras.Input(shape=input_size + (num_channels,), dtype="float32", name="images")
    X = images  # (B, h, w, C)
    for layer in embedding:  # rescale, resize, embed patches, prepend cls, add positions, dropout
        X = layer(X)  # ends at (B, 1 + P, D)
    X, scores = _apply_blocks(X, blocks, return_attention_scores)
    logits = head(final_norm(take_cls(X)))  # (B, K): D2L's head on X[:, 0]
    outputs = {"logits": logits, **scores} if return_attention_scores else logits

    # Config.
    return keras.Model(images, outputs, name=name)


def _embedding_layers(img_size, patch_size, num_hiddens, num_channels, emb_dropout):
    """The layers from raw images to the blocks' input, in the order they apply."""
    rescaling = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")
    resizing = keras.layers.Resizing(img_size[0], img_size[1], name="resizing")
    patch_embedding = PatchEmbedding(
        img_size, patch_size, num_hiddens, num_channels=num_channels, name="patch_embedding"
    )
    cls_token = ClassToken(name="cls_token")
    pos_embedding = LearnedPositionalEmbedding(
        patch_embedding.num_patches + 1,
        num_hiddens,
        # The ViT reference code's N(0, 0.02) (D2L draws N(0, 1)).
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
        name="pos_embedding",
    )
    dropout = keras.layers.Dropout(emb_dropout, name="emb_dropout")
    return [rescaling, resizing, patch_embedding, cls_token, pos_embedding, dropout]


def _vit_blocks(num_blks, num_hiddens, mlp_num_hiddens, num_heads, blk_dropout, use_bias):
    """The `num_blks` pre-norm blocks, named `vit_block_{i}`."""
    return [
        ViTBlock(
            num_hiddens,
            mlp_num_hiddens,
            num_heads,
            blk_dropout,
            use_bias=use_bias,
            name=f"vit_block_{i}",
        )
        for i in range(num_blks)
    ]


def _apply_blocks(X, blocks, return_attention_scores):
    """Runs `X` through the blocks; returns it and a dict of their weights (empty if not asked)."""
    scores = {}
    for i, block in enumerate(blocks):
        X = block(X, return_attention_scores=return_attention_scores)
        if return_attention_scores:
            X, scores[f"attention_{i}"] = X  # (B, 1 + P, D), (B, H, 1 + P, 1 + P)
    return X, scores
