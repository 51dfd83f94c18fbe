"""Training and compression in Keras: the architectures by name (`architectures`), training
(`train`), pruning (`prune`), distillation (`distill`), quantization-aware training (`qat`), and
the record each writes beside its model (`record`)."""
