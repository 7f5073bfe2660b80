"""From a Hugging Face checkpoint directory to GGUF files at 16, 8 or 4 bits."""
