"""From canonical prompts to SQL: model loading, batched generation (prefix cache, preallocated key/value buffers,
continuous batching), schema-constrained and execution-guided decoding, and prediction records."""
