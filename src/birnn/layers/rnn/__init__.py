"""Recurrent layers: cells, the generic `RNN`, `SimpleRNN`/`LSTM`/`GRU` and `Bidirectional`."""
