"""The LIIF network: encoders, MLP decoder, stateless query, checkpoints."""
