"""Generation (the book's chapters 4 and 5): feeding a model its own predictions, and talking to one.

    generate.py      generate (greedy, temperature, top-k, top-p, stop ids; a KV cache), sample_next, TextStreamer
    chat.py          answering one instruction with an instruction-tuned checkpoint (`python -m gpt chat`)
    chat_format.py   the chat layouts of instruction-tuned Llama 3 and Qwen3 folders
    printable.py     model-made text printed as text, control characters escaped
"""
