"""Methods: how a pretrained model is adapted (full fine-tuning, prefix tuning, ...).

* :mod:`.registry`      the :class:`~.registry.Method` records: name, tasks, wrap, learning rate, checkpoint loader
* :mod:`.full`          full fine-tuning: every weight trains
* :mod:`.prefix`        prefix tuning: the model, the encoder, the attention adapter, serving
* :mod:`.zero_shot`     the pretrained model as it is (no training)
* :mod:`.checkpoints`   storage only: write and read a trained method's weights (safetensors)
"""
