"""Modules that run inside Label Studio's process (its own virtualenv, not mora's).

``mora review up`` puts this folder on the server's PYTHONPATH and names ``mora_label_studio_settings``
as its Django settings: Label Studio's own settings plus ``mora_media_guard``. Nothing here imports
mora, and Django is imported only inside Label Studio.
"""

from pathlib import Path

SITE = Path(__file__).resolve().parent
SETTINGS = "mora_label_studio_settings"
