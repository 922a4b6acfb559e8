"""Interop with Hugging Face: checkpoints (`interop.hf`) and tokenizers (`interop.hf_tokenizer`)."""
