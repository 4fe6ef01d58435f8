"""Published weights and tokenizers (the book's chapter 5, "loading pretrained weights"), read as untrusted files.

    gpt2.py                OpenAI's GPT-2 in Hugging Face's layout: load_gpt2, save_gpt2
    hf.py                  Hugging Face folders of the three families: load_hf, save_hf, load_folder
    safetensors_files.py   a folder's weight files, one or many shards, read lazily
    tokenizer.py           the one tokenizer loader (bpe files, tokenizer.json, GPT-2's files, a run of ours)
"""
