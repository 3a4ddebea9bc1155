"""cot_ray: self-verifying chain-of-thought transformers, trained and served on Ray.

Implements the four-stage recipe of "Self-Verifying Reflection Helps Transformers with CoT
Reasoning" (arXiv 2510.12157). The pure-Python core (``cot_ray.tasks``, ``cot_ray.mtp``,
``cot_ray.tokenizer``) imports no Ray, torch or vLLM, so it can be tested and reused anywhere.
"""

__version__ = "0.1.0"
