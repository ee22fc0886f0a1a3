"""The base of every family's backbone: a functional `keras.Model` that carries its config."""

import keras

from zoo import lora, quantization
from zoo.config import from_dict, to_dict
from zoo.validation import ValidatedCall


class Backbone(ValidatedCall, keras.Model):
    """A family's network without a task head, built from its frozen `Config` dataclass.

    Subclasses set `family_name` (as in `zoo.build(name)`) and `config_class`, build their
    layers and graph in `__init__(config, dtype)`
    and call `super().__init__(inputs=..., outputs=..., config=config, dtype=dtype)`.
    Outputs are a dict (`"sequence_output"`, and `"pooled_output"` where there is a pooler).

    Saving stores the config dataclass, so `.keras` files rebuild the same architecture.
    """

    family_name = None
    config_class = None

    def __init__(self, *, inputs, outputs, config, dtype=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)
        self.config = config
        # The functional model reports float32 as its own policy; its layers hold `dtype`.
        self.build_dtype = keras.dtype_policies.get(dtype) if dtype else self.dtype_policy

    def enable_lora(self, rank, lora_alpha=None, target_layer_names=None):
        """Freeze the backbone and train a low-rank update of its projections (LoRA): see
        `zoo.lora.enable_lora`, which this calls."""
        return lora.enable_lora(self, rank, lora_alpha, target_layer_names)

    def quantize(self, mode=None, config=None, filters=None):
        """Quantize the weights in place: see `zoo.quantization.quantize`."""
        quantization.quantize(self, mode, config, filters)

    def get_config(self):
        policy = quantization.saved_policy(self, self.build_dtype)
        return {
            "config": to_dict(self.config),
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        family_config = from_dict(cls.config_class, config.pop("config"))
        if "dtype" in config and isinstance(config["dtype"], dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(family_config, **config)
