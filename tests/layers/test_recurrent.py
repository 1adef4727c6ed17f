"""`BahdanauDecoder`: the recurrent decoder of D2L's Bahdanau model."""

import re

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import BahdanauDecoder

from helpers import run_layer_test

B, T, S, E, H, N = 2, 3, 5, 4, 8, 2


@keras.saving.register_keras_serializable(package="keras_attention_tests")
class StackedStatesDecoder(BahdanauDecoder):
    """Test-only: the encoder states as one `(N, B, H)` tensor, so that
    `run_layer_test` can feed them as one input."""

    def build(self, X_shape, enc_outputs_shape, enc_states_shape=None):
        super().build(X_shape, enc_outputs_shape)

    def call(self, X, enc_outputs, enc_states, **kwargs):
        states = [enc_states[i] for i in range(self.num_layers)]
        return super().call(X, enc_outputs, states, **kwargs)


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(B, T, E)).astype("float32"),
        rng.normal(size=(B, S, H)).astype("float32"),
        rng.normal(size=(N, B, H)).astype("float32"),
    ]


@pytest.mark.parametrize("return_attention_scores", [False, True])
def test_layer(return_attention_scores):
    shapes = [(B, T, H), (B, T, S)] if return_attention_scores else (B, T, H)
    run_layer_test(
        StackedStatesDecoder,
        {"num_hiddens": H, "num_layers": N, "dropout": 0.1},
        inputs(),
        call_kwargs={"return_attention_scores": return_attention_scores},
        expected_output_shape=shapes,
        symbolic_shapes=[(None, E), (None, H), (None, H)],
        atol=1e-5,
    )


def test_attention_weights_are_a_distribution_over_valid_encoder_positions():
    X, enc, states = inputs(1)
    enc_mask = np.array([[True] * 3 + [False] * 2, [True] * 5])
    decoder = BahdanauDecoder(H, N)
    out, weights = decoder(
        X, enc, list(states), return_attention_scores=True, enc_outputs_mask=enc_mask
    )
    weights = ops.convert_to_numpy(weights)  # (B, T, S)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(weights[0, :, 3:], 0.0)
    # Padding invariance: what is past the mask does not change the outputs.
    changed = enc.copy()
    changed[0, 3:] = 100.0
    again = decoder(X, changed, list(states), enc_outputs_mask=enc_mask)
    np.testing.assert_allclose(ops.convert_to_numpy(again), ops.convert_to_numpy(out), atol=1e-5)


def test_the_old_import_path_still_works_with_a_deprecation_warning():
    import keras_attention.models as models

    with pytest.warns(DeprecationWarning, match="moved to keras_attention.layers.BahdanauDecoder"):
        assert models.BahdanauDecoder is BahdanauDecoder


def test_bahdanau_decoder_checks_its_inputs():
    decoder = BahdanauDecoder(8, 2)
    X, enc = np.zeros((2, 3, 4), "float32"), np.zeros((2, 5, 8), "float32")
    states = [np.zeros((2, 8), "float32")] * 2
    assert tuple(decoder(X, enc, states).shape) == (2, 3, 8)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`enc_states` must be a list of num_layers=2 states (batch, num_hiddens=8); got 1 states."
        ),
    ):
        decoder(X, enc, states[:1])
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`enc_states[1]` must have shape (batch, num_hiddens)=(None, 8); got enc_states[1].shape=(2, 4)."
        ),
    ):
        decoder(X, enc, [states[0], np.zeros((2, 4), "float32")])
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`X`, `enc_outputs`, `enc_states[0]`, `enc_states[1]` must have the same batch size (axis 0); got X.shape=(2, 3, 4), enc_outputs.shape=(1, 5, 8)"
        ),
    ):
        decoder(X, enc[:1], states)
    with pytest.raises(
        ValueError,
        match=re.escape("`X` must be 3-D (batch, length, embed_size); got X.shape=(2, 4)."),
    ):
        decoder(X[:, 0], enc, states)
    with pytest.raises(
        TypeError,
        match=re.escape("`enc_outputs` must be a float tensor; got enc_outputs.dtype=int32."),
    ):
        decoder(X, enc.astype("int32"), states)
