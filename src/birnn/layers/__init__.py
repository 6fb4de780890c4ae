"""Keras's layers, as `torch.nn.Module`s."""

from birnn._lazy import lazy_getattr

_NAMES = {
    "Layer": "birnn.layers.layer",
    "InputSpec": "birnn.layers.layer",
    "Input": "birnn.layers.input_layer",
    "InputLayer": "birnn.layers.input_layer",
    "Dense": "birnn.layers.core",
    "Activation": "birnn.layers.core",
    "Dropout": "birnn.layers.core",
    "Embedding": "birnn.layers.core",
    "Masking": "birnn.layers.core",
    "Flatten": "birnn.layers.core",
    "Concatenate": "birnn.layers.merging",
    "Add": "birnn.layers.merging",
    "Multiply": "birnn.layers.merging",
    "Average": "birnn.layers.merging",
    "TimeDistributed": "birnn.layers.time_distributed",
    "Wrapper": "birnn.layers.wrapper",
    "GlobalAveragePooling1D": "birnn.layers.pooling",
    "GlobalMaxPooling1D": "birnn.layers.pooling",
    "RNN": "birnn.layers.rnn.rnn",
    "SimpleRNNCell": "birnn.layers.rnn.simple_rnn",
    "SimpleRNN": "birnn.layers.rnn.simple_rnn",
    "LSTMCell": "birnn.layers.rnn.lstm",
    "LSTM": "birnn.layers.rnn.lstm",
    "GRUCell": "birnn.layers.rnn.gru",
    "GRU": "birnn.layers.rnn.gru",
    "StackedRNNCells": "birnn.layers.rnn.stacked_rnn_cells",
    "Bidirectional": "birnn.layers.rnn.bidirectional",
}
__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__():
    return __all__
