"""Turn mail bodies into the text a work order needs: HTML to text, reply splitting."""

from connector.cleaning.html import (
    html_reply_to_text,
    html_text_and_reply,
    html_to_text,
)
from connector.cleaning.reply import ReplySplit, split_reply

__all__ = [
    "ReplySplit",
    "html_reply_to_text",
    "html_text_and_reply",
    "html_to_text",
    "split_reply",
]
