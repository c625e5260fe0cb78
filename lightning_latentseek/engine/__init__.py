"""Everything that touches transformers: the frozen LLM, loading it, and the batching generation engine."""

from lightning_latentseek.engine.batching import (EngineClosed, Generation, GenerationEngine, PrefixStore, Row,
                                                  SequenceTooLong)
from lightning_latentseek.engine.injection import Injection
from lightning_latentseek.engine.lm import FrozenLM
from lightning_latentseek.engine.loading import LLMLoadError, load_llm, resolve_llm_source
from lightning_latentseek.engine.sampling import GenerationConfigSampler, TemperatureSampler

__all__ = ["EngineClosed", "FrozenLM", "Generation", "GenerationConfigSampler", "GenerationEngine", "Injection", "LLMLoadError",
           "PrefixStore", "Row", "SequenceTooLong", "TemperatureSampler", "load_llm", "resolve_llm_source"]
