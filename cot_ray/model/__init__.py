"""The tiny transformers of the paper as standard Hugging Face Llama models.

A checkpoint is a plain ``save_pretrained`` folder (config.json, model.safetensors, tokenizer
files), so ``transformers.AutoModelForCausalLM`` and ``vllm.LLM`` load the very same folder.
"""

from cot_ray.model.tiny import MODEL_SIZES, ModelSize, build_model, count_parameters, load_model, save_checkpoint

__all__ = ["MODEL_SIZES", "ModelSize", "build_model", "count_parameters", "load_model", "save_checkpoint"]
