"""`attribute`: integrated gradients over the source and the decoder prefix, beside attention and occlusion."""
