"""A recurrent decoder that attends: the decoder of D2L's Bahdanau model.

D2L section "The Bahdanau Attention Mechanism": at every decoding step the
decoder's top hidden state queries the encoder outputs with additive
attention, and the context vector is fed to the decoder GRU together with
the embedded target token. The decoder steps through time in the graph
(`keras.ops.scan`; a `keras.ops.while_loop` on TensorFlow, whose XLA needs
one to differentiate) over a stack of `GRUCell`s (Keras 3's `RNN` has no
`constants` argument to carry the encoder outputs), never with a Python loop
over time.

Letters used in shape comments: B batch, S source length, T target length,
E embed_size, H num_hiddens, N num_layers.
"""

import keras
from keras import ops

from keras_attention import _checks
from keras_attention.layers._policies import policy_map_config, sublayer_policy
from keras_attention.layers.attention import AdditiveAttention

__all__ = ["BahdanauDecoder"]


def _while_loop_scan(body, init, xs, ys_like):
    """The stacked outputs of `ops.scan(body, init, xs)`, as a `while_loop`.

    `body(carry, x)` returns `(carry, ys)`; `xs` is a tuple of `(T, ...)`
    tensors, and `x` the tuple of their rows at one step; `ys_like` is a
    tuple of tensors shaped like one step's `ys`. Rows of `xs` are read and
    rows of the outputs written with selects, and the loop has
    `maximum_iterations`, so that TensorFlow's XLA can compile its gradient
    (full batches and a fixed length make the shapes static).
    """
    num_steps = ops.shape(xs[0])[0]
    stacked = tuple(ops.zeros((num_steps, *ops.shape(y)), y.dtype) for y in ys_like)

    def at_row(row, tensor):  # (T,) -> broadcastable against `tensor` (T, ...)
        return ops.reshape(row, (-1,) + (1,) * (len(tensor.shape) - 1))

    def loop(t, carry, stacked):
        row = ops.arange(num_steps) == t  # (T,)
        x = tuple(ops.sum(ops.where(at_row(row, seq), seq, 0), axis=0) for seq in xs)
        carry, ys = body(carry, x)
        stacked = tuple(
            ops.where(at_row(row, s), ops.expand_dims(y, 0), s) for y, s in zip(ys, stacked)
        )
        return t + 1, carry, stacked

    _, _, stacked = ops.while_loop(
        lambda t, *_: t < num_steps, loop, (0, init, stacked), maximum_iterations=xs[0].shape[0]
    )
    return stacked


@keras.saving.register_keras_serializable(package="keras_attention")
class BahdanauDecoder(keras.layers.Layer):
    """A stacked-GRU decoder that attends over the encoder outputs at every step.

    D2L's `Seq2SeqAttentionDecoder` without its embedding and output layers:
    step `t` computes `context = attention(h_top, enc_outputs)`, then runs the
    GRU stack on `[context, x_t]`.

    Args:
        num_hiddens: int. GRU width `H` (and the attention's hidden size).
        num_layers: int. Number of stacked GRU cells `N`.
        dropout: float. Dropout on the attention weights. Defaults to `0.0`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        X: `(B, T, E)`. Embedded target inputs.
        enc_outputs: `(B, S, H)`. Encoder outputs.
        enc_states: list of `N` tensors `(B, H)`: the encoder's final states,
            the decoder's initial states.
        training: bool.
        return_attention_scores: bool. Also return the attention weights.

    Returns:
        `(B, T, H)`; with `return_attention_scores=True` also `(B, T, S)`.
    """

    def __init__(self, num_hiddens, num_layers, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
        self.num_layers = _checks.check_positive_int("num_layers", num_layers)
        self.dropout = _checks.check_dropout(dropout)
        self.supports_masking = True

    def build(self, X_shape, enc_outputs_shape, enc_states_shape=None):
        self.attention = AdditiveAttention(
            self.num_hiddens,
            self.dropout,
            dtype=sublayer_policy(self, "attention"),
            name="attention",
        )
        query_shape = (None, 1, self.num_hiddens)
        self.attention.build(query_shape, enc_outputs_shape, enc_outputs_shape)
        self.cells = []
        input_size = enc_outputs_shape[-1] + X_shape[-1]
        for i in range(self.num_layers):
            cell = keras.layers.GRUCell(
                self.num_hiddens, dtype=sublayer_policy(self, f"gru_cell_{i}"), name=f"gru_cell_{i}"
            )
            cell.build((None, input_size))
            self.cells.append(cell)
            input_size = self.num_hiddens
        self.built = True

    def _check_inputs(self, X, enc_outputs, enc_states):
        _checks.check_float_tensor("X", X)
        _checks.check_float_tensor("enc_outputs", enc_outputs)
        if len(X.shape) != 3:
            raise ValueError(
                f"`X` must be 3-D (batch, length, embed_size); got X.shape={tuple(X.shape)}."
            )
        _checks.check_sequence("enc_outputs", enc_outputs.shape)
        if not isinstance(enc_states, (list, tuple)) or len(enc_states) != self.num_layers:
            got = (
                f"{len(enc_states)} states"
                if isinstance(enc_states, (list, tuple))
                else repr(enc_states)
            )
            raise ValueError(
                f"`enc_states` must be a list of num_layers={self.num_layers} states "
                f"(batch, num_hiddens={self.num_hiddens}); got {got}."
            )
        for i, state in enumerate(enc_states):
            _checks.check_shape(
                f"enc_states[{i}]", state.shape, (None, self.num_hiddens), "batch, num_hiddens"
            )
        _checks.check_same_batch(
            ("X", X.shape),
            ("enc_outputs", enc_outputs.shape),
            *((f"enc_states[{i}]", state.shape) for i, state in enumerate(enc_states)),
        )

    def step(self, x, states, enc_outputs, enc_mask=None, training=None, dropout_mask=None):
        """One decoding step.

        Args:
            x: `(B, E)`. Embedded input token.
            states: list of `N` tensors `(B, H)`.
            enc_outputs: `(B, S, H)`.
            enc_mask: optional boolean `(B, S)`; False at source padding.
            training: bool. Whether dropout is active.
            dropout_mask: optional `(B, S)`. The attention dropout of this
                step, drawn before the loop (see `call`).

        Returns:
            `(output (B, H), new_states, attention weights (B, S))`.
        """
        query = ops.expand_dims(states[-1], 1)  # (B, 1, H)
        context, weights = self.attention(
            query,
            enc_outputs,
            enc_outputs,
            attention_mask=None if enc_mask is None else ops.expand_dims(enc_mask, 1),
            training=training,
            return_attention_scores=True,
            dropout_mask=None if dropout_mask is None else ops.expand_dims(dropout_mask, 1),
        )  # (B, 1, H), (B, 1, S)
        inputs = ops.concatenate([context[:, 0], ops.cast(x, context.dtype)], axis=-1)
        new_states = []
        for cell, state in zip(self.cells, states):
            inputs, (state,) = cell(inputs, [state], training=training)
            new_states.append(state)
        return inputs, new_states, weights[:, 0]

    def call(
        self,
        X,
        enc_outputs,
        enc_states,
        training=None,
        return_attention_scores=False,
        enc_outputs_mask=None,
    ):
        return_attention_scores = _checks.check_bool(
            "return_attention_scores", return_attention_scores
        )
        self._check_inputs(X, enc_outputs, enc_states)
        X = ops.transpose(X, (1, 0, 2))  # (T, B, E), time-major
        batch, num_keys = ops.shape(enc_outputs)[0], ops.shape(enc_outputs)[1]
        xs = (X,)
        # The attention dropout of every step, drawn before the loop: JAX
        # can't draw random numbers (update a seed) inside a traced loop.
        if training and self.dropout > 0:
            dropout_masks = self.attention.dropout_mask(
                (ops.shape(X)[0], batch, num_keys)
            )  # (T, B, S): 0 or 1 / (1 - dropout)
            xs = (X, dropout_masks)

        def body(states, x):
            x, dropout_mask = x if len(x) == 2 else (x[0], None)
            output, states, step_weights = self.step(
                x,
                list(states),
                enc_outputs,
                enc_outputs_mask,
                training=training,
                dropout_mask=dropout_mask,
            )
            return tuple(states), (output, ops.cast(step_weights, output.dtype))

        # An in-graph loop over target positions. JAX differentiates only a
        # loop of fixed length (`scan`); TensorFlow's XLA only a `while_loop`
        # with `maximum_iterations`, which Keras' TensorFlow `scan` doesn't set.
        if keras.backend.backend() == "tensorflow":
            ys_like = (
                ops.zeros((batch, self.num_hiddens), self.compute_dtype),
                ops.zeros((batch, num_keys), self.compute_dtype),
            )
            outputs, weights = _while_loop_scan(body, tuple(enc_states), xs, ys_like)
        else:
            _, (outputs, weights) = ops.scan(body, tuple(enc_states), xs)  # (T, B, H), (T, B, S)
        outputs = ops.transpose(outputs, (1, 0, 2))  # (B, T, H)
        if return_attention_scores:
            return outputs, ops.transpose(weights, (1, 0, 2))  # (B, T, S)
        return outputs

    def compute_mask(self, X, previous_mask=None):
        return previous_mask

    def get_config(self):
        return {
            **super().get_config(),
            **policy_map_config(self),
            "num_hiddens": self.num_hiddens,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
        }
