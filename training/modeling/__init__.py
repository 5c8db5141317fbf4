"""The actiseg model, one module per concept (image encoder, text encoder, fusion, mask decoder)."""
