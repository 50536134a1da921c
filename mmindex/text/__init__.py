"""Free-text queries: text encoders, the concept bank, word2vec training and evaluation."""

from mmindex.text.encoders import (
    DEFAULT_TEXT_ENCODER,
    TextEncoder,
    create_text_encoder,
    list_text_encoders,
    register_text_encoder,
    text_encoder_installed,
)

__all__ = ["DEFAULT_TEXT_ENCODER", "TextEncoder", "create_text_encoder", "list_text_encoders",
           "register_text_encoder", "text_encoder_installed"]
