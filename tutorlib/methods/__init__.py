"""Methods: how a pretrained model is adapted (full fine-tuning, prefix tuning, ...).

* :mod:`.full`          full fine-tuning: every weight trains
* :mod:`.prefix`        prefix tuning: the model, the encoder, the attention adapter, serving
* :mod:`.checkpoints`   storage only: write and read a trained method's weights (safetensors)
"""
