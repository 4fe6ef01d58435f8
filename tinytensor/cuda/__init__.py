"""What is not the math, on a GPU: tinytensor's own CUDA kernels (``kernels``: GELU, layer norm, the
attention softmax, cross-entropy, AdamW), cuBLAS called on strided views (``blas``) and flash attention
(``flash_attention``). The ops in tinytensor/ops/ hold the formulas; these run them on CuPy arrays.
"""
