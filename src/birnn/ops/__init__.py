"""Pure tensor functions (recurrent scans, fused kernels, mask compaction): no Keras concepts."""
