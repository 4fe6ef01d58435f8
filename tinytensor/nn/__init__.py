"""Layers: Module (the base class), Parameter, and the building blocks of a GPT."""
from .module import Module, Parameter
from .init import skip_init
from .layers import Dropout, Embedding, GELU, LayerNorm, Linear, ModuleList, ReLU, Sequential, Tanh
from .layers_llama import RMSNorm, SiLU
from ..distributed.ddp import DistributedDataParallel   # (distributed/ddp.py: not a layer's math)

__all__ = ["Module", "Parameter", "Linear", "Embedding", "LayerNorm", "Dropout", "ModuleList", "Sequential",
           "GELU", "ReLU", "Tanh", "skip_init", "RMSNorm", "SiLU", "DistributedDataParallel"]
